//! Answers that name jobs whose payload the memory budget let go (`core/payloads.rs`): the
//! actor reads those payloads back from the store (through the store writer's queue, after
//! the writes before them) and fills them in before the answer leaves.

use std::collections::HashMap;

use bytes::Bytes;

use super::error::Error;
use super::job::{JobId, JobRecord, JobView};

/// Something that may hold spilled records.
pub trait Spilled: Send + 'static {
    /// Adds the ids of the spilled records it holds to `out`.
    fn spilled_ids(&self, out: &mut Vec<JobId>);
    /// Fills them from `read`; an error when one is missing (the store lost it).
    fn fill(&mut self, read: &HashMap<JobId, Bytes>) -> Result<(), Error>;
}

impl Spilled for JobRecord {
    fn spilled_ids(&self, out: &mut Vec<JobId>) {
        if self.spilled.is_some() {
            out.push(self.id);
        }
    }

    fn fill(&mut self, read: &HashMap<JobId, Bytes>) -> Result<(), Error> {
        if self.spilled.is_none() {
            return Ok(());
        }
        let args = read.get(&self.id).ok_or_else(|| {
            Error::StoreRead(format!("job {}: its payload is not in the store", self.id))
        })?;
        self.args = args.clone();
        self.spilled = None;
        Ok(())
    }
}

impl Spilled for JobView {
    fn spilled_ids(&self, out: &mut Vec<JobId>) {
        self.record.spilled_ids(out)
    }

    fn fill(&mut self, read: &HashMap<JobId, Bytes>) -> Result<(), Error> {
        self.record.fill(read)
    }
}

impl<T: Spilled> Spilled for Vec<T> {
    fn spilled_ids(&self, out: &mut Vec<JobId>) {
        for t in self {
            t.spilled_ids(out);
        }
    }

    fn fill(&mut self, read: &HashMap<JobId, Bytes>) -> Result<(), Error> {
        self.iter_mut().try_for_each(|t| t.fill(read))
    }
}
