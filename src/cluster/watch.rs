//! Watchers across nodes: WatchJob, RunJobStream and Periodic's RecvData on one node hear
//! the data chunks and the end of a job that runs on another.
//!
//! A node that gets a watcher for (task, name) stores it in `job_watches` and announces it
//! (`NOTIFY taskhive_watch`); every other node keeps the set of keys watched elsewhere. The
//! node running a job of a watched key forwards each chunk its worker streams, then the
//! outcome, as `NOTIFY taskhive_job_data` notifications, in order: one publisher task sends
//! them all on one session, and PostgreSQL delivers one session's notifications in commit
//! order. A notification carries at most 8,000 bytes, so an event travels as pieces of
//! [`PIECE`] bytes, reassembled by the receiving node's claimer.
//!
//! Cost: nothing for jobs nobody watches on another node (a set lookup per chunk and per
//! finished job); a watched chunk costs one statement per [`PIECE`] bytes. A watcher that
//! subscribes while the job already runs elsewhere hears the chunks from then on, as on one
//! node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{db_err, sql, Shared};
use crate::scheduler::actor::JobEvent;
use crate::scheduler::error::Error;

/// Raw bytes per notification: base64 makes 2,668, leaving room for the node id, task and
/// name (≤ 255 bytes each, up to 6× longer JSON-escaped) under PostgreSQL's 8,000-byte
/// payload limit.
pub(super) const PIECE: usize = 2_000;

type Key = (String, String);

/// One piece of a forwarded event, as JSON in a notification.
#[derive(serde::Serialize, serde::Deserialize)]
struct Piece {
    /// The node that sent it (it ignores its own).
    o: String,
    t: String,
    n: String,
    /// `d` data, `r` result, `e` error.
    k: char,
    /// The piece's bytes, base64.
    b: String,
    /// More pieces of this event follow.
    m: bool,
}

/// A node watching a key, as JSON in `taskhive_watch`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Notice {
    o: String,
    t: String,
    n: String,
}

/// This node's side of cross-node watching.
pub(super) struct Watches {
    /// Keys with a watcher on this node registered in `job_watches`.
    here: Mutex<HashSet<Key>>,
    /// Keys with a watcher on some other node: their events are forwarded.
    elsewhere: Mutex<HashSet<Key>>,
    /// Events to forward, in order, to the publisher task.
    out: mpsc::UnboundedSender<(Key, JobEvent)>,
    /// Pieces received so far of events not yet complete.
    partial: Mutex<HashMap<(String, Key), Vec<u8>>>,
}

impl Watches {
    /// The watch state and the receiving end of the forwarding queue (for [`publish`]).
    pub(super) fn new() -> (Watches, mpsc::UnboundedReceiver<(Key, JobEvent)>) {
        let (out, rx) = mpsc::unbounded_channel();
        let w = Watches {
            here: Mutex::default(),
            elsewhere: Mutex::default(),
            out,
            partial: Mutex::default(),
        };
        (w, rx)
    }

    /// A worker here streamed a chunk: forwarded when the job is watched elsewhere.
    pub(super) fn data(&self, task: &str, name: &str, data: &Bytes) {
        let key = (task.to_string(), name.to_string());
        if self.elsewhere.lock().expect("poisoned").contains(&key) {
            let _ = self.out.send((key, JobEvent::Data(data.clone())));
        }
    }

    /// A job finished here: its outcome is forwarded when it is watched elsewhere (those
    /// watchers are done then); returns whether this node had registered a watch of its own
    /// (now answered, so its row can go).
    pub(super) fn finished(&self, task: &str, name: &str, result: &Result<Bytes, String>) -> bool {
        let key = (task.to_string(), name.to_string());
        if self.elsewhere.lock().expect("poisoned").remove(&key) {
            let _ = self
                .out
                .send((key.clone(), JobEvent::Finished(result.clone())));
        }
        self.here.lock().expect("poisoned").remove(&key)
    }

    /// A job just claimed here has a watcher on another node (the claim read it).
    pub(super) fn watched_elsewhere(&self, task: &str, name: &str) {
        self.elsewhere
            .lock()
            .expect("poisoned")
            .insert((task.to_string(), name.to_string()));
    }

    /// `taskhive_watch`: another node watches a key.
    pub(super) fn noticed(&self, me: &str, payload: &str) {
        match serde_json::from_str::<Notice>(payload) {
            Ok(n) if n.o != me => {
                self.elsewhere.lock().expect("poisoned").insert((n.t, n.n));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "unreadable watch notice"),
        }
    }

    /// Replaces the keys watched elsewhere (at start and after notifications were missed).
    pub(super) fn set_elsewhere(&self, keys: HashSet<Key>) {
        *self.elsewhere.lock().expect("poisoned") = keys;
    }

    /// `taskhive_job_data`: a piece of an event from another node; the whole event once its
    /// last piece is in.
    pub(super) fn piece(&self, me: &str, payload: &str) -> Option<(Key, JobEvent)> {
        let p: Piece = match serde_json::from_str(payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable forwarded job event");
                return None;
            }
        };
        if p.o == me {
            return None;
        }
        let bytes = STANDARD.decode(&p.b).ok()?;
        let key = (p.t, p.n);
        let mut partial = self.partial.lock().expect("poisoned");
        let slot = (p.o, key.clone());
        let mut whole = partial.remove(&slot).unwrap_or_default();
        whole.extend_from_slice(&bytes);
        if p.m {
            partial.insert(slot, whole);
            return None;
        }
        let event = match p.k {
            'd' => JobEvent::Data(Bytes::from(whole)),
            'r' => JobEvent::Finished(Ok(Bytes::from(whole))),
            _ => JobEvent::Finished(Err(String::from_utf8_lossy(&whole).into_owned())),
        };
        if matches!(event, JobEvent::Finished(_)) {
            self.here.lock().expect("poisoned").remove(&key);
        }
        Some((key, event))
    }

    /// Registers a watcher of `key` on this node, before the caller submits or waits.
    pub(super) async fn start(&self, shared: &Shared, key: Key) -> Result<(), Error> {
        let notice = serde_json::to_string(&Notice {
            o: shared.node.clone(),
            t: key.0.clone(),
            n: key.1.clone(),
        })
        .expect("serializable");
        let live = shared.conn().await?;
        live.client
            .execute(sql::WATCH_START, &[&key.0, &key.1, &shared.node, &notice])
            .await
            .map_err(db_err)?;
        self.here.lock().expect("poisoned").insert(key);
        Ok(())
    }
}

/// Sends forwarded events, in order, on one session (reopened if it breaks).
pub(super) async fn publish(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<(Key, JobEvent)>) {
    while let Some(((task, name), event)) = rx.recv().await {
        let (kind, bytes) = match &event {
            JobEvent::Data(d) => ('d', d.clone()),
            JobEvent::Finished(Ok(r)) => ('r', r.clone()),
            JobEvent::Finished(Err(e)) => ('e', Bytes::from(e.clone().into_bytes())),
        };
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[][..]]
        } else {
            bytes.chunks(PIECE).collect()
        };
        let last = chunks.len() - 1;
        for (i, c) in chunks.into_iter().enumerate() {
            let piece = serde_json::to_string(&Piece {
                o: shared.node.clone(),
                t: task.clone(),
                n: name.clone(),
                k: kind,
                b: STANDARD.encode(c),
                m: i < last,
            })
            .expect("serializable");
            // Session 0 always: one session's notifications arrive in order.
            let r = match shared.writes.first().await {
                Ok(live) => live
                    .client
                    .execute(sql::JOB_EVENT, &[&piece])
                    .await
                    .map_err(db_err),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::warn!(task, name, error = %e, "forwarding a watched job's event failed");
                break;
            }
        }
    }
}

/// Forgets this node's watch of `key` in the database (it was answered).
pub(super) fn end(shared: Arc<Shared>, key: Key) {
    tokio::spawn(async move {
        let r = match shared.conn().await {
            Ok(live) => live
                .client
                .execute(sql::WATCH_END, &[&key.0, &key.1, &shared.node])
                .await
                .map_err(db_err),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "removing an answered watch failed");
        }
    });
}

/// The keys watched on other nodes now.
pub(super) async fn load_elsewhere(
    client: &tokio_postgres::Client,
    me: &str,
) -> Result<HashSet<Key>, tokio_postgres::Error> {
    let rows = client.query(sql::WATCHED_ELSEWHERE, &[&me]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_of_the_largest_names_fits_a_notification() {
        let worst = "\u{1}".repeat(255);
        let p = serde_json::to_string(&Piece {
            o: worst.clone(),
            t: worst.clone(),
            n: worst,
            k: 'd',
            b: STANDARD.encode([0u8; PIECE]),
            m: true,
        })
        .unwrap();
        assert!(p.len() < 8_000, "{} bytes", p.len());
    }

    #[test]
    fn pieces_from_another_node_make_one_event_and_own_pieces_are_ignored() {
        let (w, _rx) = Watches::new();
        let piece = |o: &str, k, b: &[u8], m| {
            serde_json::to_string(&Piece {
                o: o.into(),
                t: "t".into(),
                n: "n".into(),
                k,
                b: STANDARD.encode(b),
                m,
            })
            .unwrap()
        };
        assert!(w.piece("me", &piece("other", 'd', b"ab", true)).is_none());
        assert!(w.piece("me", &piece("me", 'd', b"zz", false)).is_none());
        let (key, ev) = w.piece("me", &piece("other", 'd', b"cd", false)).unwrap();
        assert_eq!(key, ("t".into(), "n".into()));
        assert_eq!(ev, JobEvent::Data(Bytes::from_static(b"abcd")));
        let (_, ev) = w.piece("me", &piece("other", 'e', b"boom", false)).unwrap();
        assert_eq!(ev, JobEvent::Finished(Err("boom".into())));
    }
}
