//! Writes a later op of the same group commit makes moot, skipped by stores that apply a
//! batch op by op and key a job's row by its id alone (SQLite). PostgreSQL does not use it:
//! its upsert also deletes any other row of the same task and name, which a skipped upsert
//! would leave behind.

use super::{JobWrite, Op, Write};

/// Which of a batch's job writes are moot: an upsert or a reschedule of a job that a later op
/// of the same batch deletes. The batch commits as one transaction, so skipping them leaves
/// the same rows (the delete stays: the job may have been stored before the batch). `None`
/// when the batch deletes nothing, which is every batch of submits alone.
///
/// Why it pays: a job handed to a worker at once can be finished, and its delete queued,
/// while its insert still waits for the commit under way; such a job then costs the store
/// one delete of a row it never wrote instead of an insert and a delete.
pub(crate) fn moot_writes(ops: &[Op]) -> Option<Vec<bool>> {
    let deletes = ops
        .iter()
        .filter(|o| matches!(o, Op::Scheduler(Write::Job(JobWrite::Delete(_)))))
        .count();
    if deletes == 0 {
        return None;
    }
    // Job ids, hashed once per op of every commit that finishes jobs: foldhash, not SipHash.
    let mut deleted_later = std::collections::HashSet::with_capacity_and_hasher(
        deletes,
        foldhash::fast::RandomState::default(),
    );
    let mut moot = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        match op {
            Op::Scheduler(Write::Job(JobWrite::Delete(id))) => {
                deleted_later.insert(*id);
            }
            Op::Scheduler(Write::Job(JobWrite::Upsert(r))) => {
                moot[i] = deleted_later.contains(&r.id)
            }
            Op::Scheduler(Write::Job(JobWrite::Reschedule { id, .. })) => {
                moot[i] = deleted_later.contains(id)
            }
            _ => {}
        }
    }
    Some(moot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::job::JobRecord;

    fn upsert(id: u64) -> Op {
        Op::from(JobWrite::Upsert(JobRecord {
            id,
            task: "t".into(),
            name: format!("n{id}"),
            ..JobRecord::default()
        }))
    }

    fn reschedule(id: u64) -> Op {
        Op::from(JobWrite::Reschedule {
            id,
            sched_at: 5,
            attempts: 1,
            run_count: 0,
            dead: false,
            last_error: String::new(),
        })
    }

    fn delete(id: u64) -> Op {
        Op::from(JobWrite::Delete(id))
    }

    #[test]
    fn a_batch_without_deletes_has_nothing_moot() {
        assert_eq!(moot_writes(&[upsert(1), reschedule(1), upsert(2)]), None);
        assert_eq!(moot_writes(&[]), None);
    }

    #[test]
    fn writes_of_a_job_deleted_later_in_the_batch_are_moot() {
        let ops = [
            upsert(1),
            upsert(2),
            reschedule(1),
            delete(1),
            // Job 2 written twice, deleted, then written again: only the last write counts.
            upsert(2),
            delete(2),
            upsert(2),
            // A delete of a job this batch never wrote (it may be stored) is kept.
            delete(3),
            upsert(4),
        ];
        assert_eq!(
            moot_writes(&ops),
            Some(vec![
                true, true, true, false, true, false, false, false, false
            ])
        );
    }

    #[test]
    fn other_ops_are_never_moot() {
        let ops = [
            Op::Scheduler(Write::Release(vec![1])),
            Op::from(JobWrite::DeleteTask("t".into())),
            Op::Scheduler(Write::SetConfig {
                key: "timeout".into(),
                value: 1,
            }),
            delete(1),
        ];
        assert_eq!(moot_writes(&ops), Some(vec![false; 4]));
    }
}
