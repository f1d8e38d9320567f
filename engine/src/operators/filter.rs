//! The filter operator: drops records whose value is a multiple of `drop_multiples_of`.
//! Zero keeps every record.

use crate::record::StreamRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    pub drop_multiples_of: i64,
}

impl Filter {
    pub fn keep(&self, record: &StreamRecord) -> bool {
        self.drop_multiples_of == 0 || record.value.rem_euclid(self.drop_multiples_of) != 0
    }
}
