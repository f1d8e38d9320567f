//! The durable-storage interface every node uses.
//!
//! It owns the contract, not the implementation: `sim` provides a simulated disk whose writes
//! stay volatile until [`Disk::sync`], so that a crash loses exactly what was not synced. The
//! engine must call `sync` wherever it promises durability (a broker acknowledging an append,
//! the sink acknowledging a commit, a producer recording progress).
//!
//! Operations are synchronous: the simulated disk is memory, and its latency is not modelled.

use std::sync::Arc;

/// A node's private disk: named files of bytes, surviving restarts of the node.
pub trait Disk: Send + Sync {
    /// The file's current contents (synced and unsynced writes), or `None` if it does not exist.
    fn read(&self, file: &str) -> Option<Vec<u8>>;
    /// `len` bytes of a file from byte `start`, or `None` if the file or the range does not exist.
    fn read_range(&self, file: &str, start: u64, len: usize) -> Option<Vec<u8>>;
    /// Calls `visit` with bytes `start..start + len` of a file, in as few pieces as the disk
    /// holds them, without copying. Returns `false` if the file or the range does not exist.
    fn visit_range(&self, file: &str, start: u64, len: usize, visit: &mut dyn FnMut(&[u8])) -> bool {
        match self.read_range(file, start, len) {
            Some(bytes) => {
                visit(&bytes);
                true
            }
            None => false,
        }
    }
    /// Appends bytes to a file, creating it if needed. Volatile until `sync`.
    fn append(&self, file: &str, bytes: Vec<u8>);
    /// Replaces a file's contents atomically (write-to-temp then rename). Volatile until `sync`.
    fn replace(&self, file: &str, bytes: &[u8]);
    /// Cuts a file to its first `len` bytes (no-op if it is shorter). Volatile until `sync`.
    fn truncate(&self, file: &str, len: u64);
    /// Removes a file. Volatile until `sync`.
    fn remove(&self, file: &str);
    /// Makes every earlier write to this file durable.
    fn sync(&self, file: &str);
    /// Names of the existing files starting with `prefix`, in sorted order.
    fn list(&self, prefix: &str) -> Vec<String>;
}

/// The shared handle a node holds to its disk.
pub type DiskRef = Arc<dyn Disk>;

/// A disk in memory for the engine's unit tests: every write is durable at once.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct MemDisk {
    files: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

#[cfg(test)]
impl Disk for MemDisk {
    fn read(&self, file: &str) -> Option<Vec<u8>> {
        self.files.lock().unwrap().get(file).cloned()
    }
    fn read_range(&self, file: &str, start: u64, len: usize) -> Option<Vec<u8>> {
        let files = self.files.lock().unwrap();
        files.get(file)?.get(start as usize..start as usize + len).map(<[u8]>::to_vec)
    }
    fn append(&self, file: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().entry(file.to_string()).or_default().extend(bytes);
    }
    fn replace(&self, file: &str, bytes: &[u8]) {
        self.files.lock().unwrap().insert(file.to_string(), bytes.to_vec());
    }
    fn truncate(&self, file: &str, len: u64) {
        if let Some(f) = self.files.lock().unwrap().get_mut(file) {
            f.truncate(len as usize);
        }
    }
    fn remove(&self, file: &str) {
        self.files.lock().unwrap().remove(file);
    }
    fn sync(&self, _file: &str) {}
    fn list(&self, prefix: &str) -> Vec<String> {
        self.files.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }
}
