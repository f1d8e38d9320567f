//! The map operator: `value * scale + offset`, wrapping on overflow.

use crate::record::StreamRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Map {
    pub scale: i64,
    pub offset: i64,
}

impl Map {
    pub fn apply(&self, record: StreamRecord) -> StreamRecord {
        let value = record.value.wrapping_mul(self.scale).wrapping_add(self.offset);
        StreamRecord { value, ..record }
    }
}
