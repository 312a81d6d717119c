#!/usr/bin/env bash
ls -lrth $@
echo "SCHED_LATER 5" # tell periodic do the job 5 second later
# echo "DONE" # tell periodic the job is done
# echo "FAIL" # tell periodic the job is fail
