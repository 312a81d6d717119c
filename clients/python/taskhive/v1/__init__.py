"""Generated gRPC stubs of ``taskhive.v1`` (``scheduler_pb2``, ``scheduler_pb2_grpc``); see ../../gen.sh."""
