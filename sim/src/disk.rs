//! The simulated disk: one per node, outside the node, surviving its crashes.
//!
//! It owns the crash model. Writes (append, replace, remove) change the file's current contents
//! at once but stay volatile until `sync`; `crash` rolls every file back to its last synced
//! state — appends since the sync vanish, a replaced or removed file comes back as it was.
//! What was synced survives every crash. Torn writes are modelled by the engine's framing
//! (`engine::codec`), not here.
//!
//! A file is a list of appended chunks, so appending never copies what is already there, and
//! the checkers read a whole file as its chunks ([`SimDisk::contents`]), shared, not copied.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use faultline_engine::codec;
use faultline_engine::disk::Disk;

#[derive(Clone, Default)]
struct Contents {
    /// Shared with the [`FileBytes`] handed out; a truncation copies a shared last chunk.
    chunks: Vec<Arc<Vec<u8>>>,
    /// Byte position of each chunk's first byte.
    starts: Vec<usize>,
    len: usize,
}

impl Contents {
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut contents = Contents::default();
        contents.append(bytes.to_vec());
        contents
    }

    fn append(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.starts.push(self.len);
            self.len += bytes.len();
            self.chunks.push(Arc::new(bytes));
        }
    }

    /// Visits bytes `start..start + len` chunk by chunk; `false` if the range is out of bounds.
    fn visit_range(&self, start: usize, len: usize, visit: &mut dyn FnMut(&[u8])) -> bool {
        if start.checked_add(len).is_none_or(|end| end > self.len) {
            return false;
        }
        let mut chunk = self.starts.partition_point(|&s| s <= start).saturating_sub(1);
        let (mut at, end) = (start, start + len);
        while at < end {
            let offset = at - self.starts[chunk];
            let n = (end - at).min(self.chunks[chunk].len() - offset);
            visit(&self.chunks[chunk][offset..offset + n]);
            at += n;
            chunk += 1;
        }
        true
    }

    fn truncate(&mut self, len: usize) {
        while self.len > len {
            let last = self.chunks.last_mut().expect("len counts the chunks' bytes");
            let cut = (self.len - len).min(last.len());
            self.len -= cut;
            if cut == last.len() {
                self.chunks.pop();
                self.starts.pop();
            } else {
                // Cutting into the chunk: a copy if a reader still holds it.
                let kept = last.len() - cut;
                Arc::make_mut(last).truncate(kept);
            }
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        joined(&self.chunks, self.len)
    }
}

/// A file's contents as of a [`SimDisk::contents`] call: its chunks, shared with the disk.
pub struct FileBytes {
    chunks: Vec<Arc<Vec<u8>>>,
    len: usize,
    /// The chunks joined, made only if a frame spans two of them.
    whole: OnceCell<Arc<Vec<u8>>>,
}

impl FileBytes {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's frames as [`codec::frames`] reads the whole file: the bodies up to the first
    /// torn or corrupt frame, and the length they take. A file is appended a frame at a time,
    /// so each frame is read where it lies; only if one spans chunks (or a chunk ends torn
    /// before another) are the chunks joined and read as one.
    pub fn frames(&self) -> (Vec<&[u8]>, usize) {
        let (bodies, valid) = self.frames_within();
        (bodies.into_iter().map(|(_, body)| body).collect(), valid)
    }

    /// [`FileBytes::frames`], each body with the buffer it lies in (a chunk, or the chunks
    /// joined), for reading byte strings that share it.
    pub fn frames_within(&self) -> (Vec<FrameWithin<'_>>, usize) {
        let mut bodies = Vec::new();
        let mut valid = 0;
        for (i, chunk) in self.chunks.iter().enumerate() {
            let (each, used) = codec::frames(chunk);
            bodies.extend(each.into_iter().map(|body| (chunk, body)));
            valid += used;
            if used < chunk.len() {
                if i + 1 == self.chunks.len() {
                    break;
                }
                let whole = self.joined();
                let (each, used) = codec::frames(whole);
                return (each.into_iter().map(|body| (whole, body)).collect(), used);
            }
        }
        (bodies, valid)
    }

    /// The chunks joined.
    pub fn whole(&self) -> &[u8] {
        self.joined()
    }

    fn joined(&self) -> &Arc<Vec<u8>> {
        self.whole.get_or_init(|| Arc::new(joined(&self.chunks, self.len)))
    }
}

/// A frame body with the buffer it lies in.
pub type FrameWithin<'a> = (&'a Arc<Vec<u8>>, &'a [u8]);

/// `chunks` (of `len` bytes in all) as one buffer.
fn joined(chunks: &[Arc<Vec<u8>>], len: usize) -> Vec<u8> {
    let mut whole = Vec::with_capacity(len);
    chunks.iter().for_each(|c| whole.extend_from_slice(c));
    assert_eq!(whole.len(), len, "a file's length counts its chunks' bytes");
    whole
}

#[derive(Default)]
struct File {
    data: Contents,
    /// `data`'s first `synced_len` bytes are durable, unless `before_rewrite` says otherwise.
    synced_len: usize,
    /// Set when the file was replaced or removed since its last sync: what a crash restores
    /// (`None`: the file did not exist durably).
    before_rewrite: Option<Option<Contents>>,
    exists: bool,
}

impl File {
    fn durable(&self) -> Option<Contents> {
        match &self.before_rewrite {
            Some(previous) => previous.clone(),
            None => self.exists.then(|| {
                let mut durable = self.data.clone();
                durable.truncate(self.synced_len);
                durable
            }),
        }
    }

    fn rewrite(&mut self, bytes: Option<&[u8]>) {
        if self.before_rewrite.is_none() {
            self.before_rewrite = Some(self.durable());
        }
        self.exists = bytes.is_some();
        self.data = Contents::from_bytes(bytes.unwrap_or_default());
        self.synced_len = 0;
    }

    fn unsynced_bytes(&self) -> usize {
        match self.before_rewrite {
            Some(_) => self.data.len,
            None => self.data.len - self.synced_len,
        }
    }
}

/// A file's contents as a sync made them durable, with the simulated ms of the sync.
pub type Version = (u64, Vec<u8>);

/// A node's disk.
#[derive(Default)]
pub struct SimDisk {
    files: Mutex<BTreeMap<String, File>>,
    /// Test-only: syncs of files starting with this prefix do nothing.
    skip_sync: Mutex<Option<String>>,
    /// Files whose every synced version is kept, with the simulated ms of its sync: what the
    /// checkers read of a node's durable history (the store's job record).
    watched: Mutex<BTreeMap<String, Vec<Version>>>,
    /// The removals kept for the checkers.
    removals: Mutex<Removals>,
    /// The first sync of each file under a prefix, kept for the checkers.
    first_syncs: Mutex<FirstSyncs>,
}

/// A prefix whose files' first syncs are kept, and those syncs.
#[derive(Default)]
struct FirstSyncs {
    prefix: Option<String>,
    /// File → the simulated ms of its first sync.
    kept: BTreeMap<String, u64>,
}

/// A prefix whose files' removals are kept, and those removals.
#[derive(Default)]
struct Removals {
    prefix: Option<String>,
    /// (simulated ms, file), in order.
    kept: Vec<(u64, String)>,
}

impl SimDisk {
    /// Loses every unsynced write, as a power cut or process crash would.
    pub fn crash(&self) {
        let mut files = self.files.lock().unwrap();
        for file in files.values_mut() {
            match file.before_rewrite.take() {
                Some(previous) => {
                    file.exists = previous.is_some();
                    file.data = previous.unwrap_or_default();
                    file.synced_len = file.data.len;
                }
                None => file.data.truncate(file.synced_len),
            }
        }
        files.retain(|_, f| f.exists);
    }

    /// Test-only: makes `sync` a no-op for files starting with `prefix`, as if the engine had
    /// forgotten to call it there.
    pub fn skip_sync(&self, prefix: &str) {
        *self.skip_sync.lock().unwrap() = Some(prefix.to_string());
    }

    /// Keeps every version of `file` a sync makes durable from now on (see
    /// [`SimDisk::synced_versions`]).
    pub fn watch(&self, file: &str) {
        self.watched.lock().unwrap().insert(file.to_string(), Vec::new());
    }

    /// Every version of a watched file a sync made durable, with the simulated ms of the sync,
    /// in order.
    pub fn synced_versions(&self, file: &str) -> Vec<Version> {
        self.watched.lock().unwrap().get(file).cloned().unwrap_or_default()
    }

    /// Keeps every removal of an existing file whose name starts with `prefix` from now on (see
    /// [`SimDisk::removals`]).
    pub fn watch_removals(&self, prefix: &str) {
        let mut removals = self.removals.lock().unwrap();
        assert!(removals.prefix.is_none(), "one watched prefix per disk");
        removals.prefix = Some(prefix.to_string());
    }

    /// Keeps the first sync of each existing file whose name starts with `prefix` from now on
    /// (see [`SimDisk::first_syncs`]): when each became durable.
    pub fn watch_first_syncs(&self, prefix: &str) {
        let mut first = self.first_syncs.lock().unwrap();
        assert!(first.prefix.is_none(), "one prefix of first syncs per disk");
        first.prefix = Some(prefix.to_string());
    }

    /// Each file under the watched prefix that a sync made durable, with the simulated ms of
    /// its first sync, by name.
    pub fn first_syncs(&self) -> Vec<(u64, String)> {
        self.first_syncs.lock().unwrap().kept.iter().map(|(file, &ms)| (ms, file.clone())).collect()
    }

    /// Every removal of a file under the watched prefix, with the simulated ms it was asked for,
    /// in order (a crash before the next sync may bring the file back).
    pub fn removals(&self) -> Vec<(u64, String)> {
        self.removals.lock().unwrap().kept.clone()
    }

    /// A file's current contents, durable or not, without copying them; `None` if it does not
    /// exist.
    pub fn contents(&self, file: &str) -> Option<FileBytes> {
        let files = self.files.lock().unwrap();
        let f = files.get(file).filter(|f| f.exists)?;
        Some(FileBytes { chunks: f.data.chunks.clone(), len: f.data.len, whole: OnceCell::new() })
    }

    /// Blob written but not yet synced, over all files.
    pub fn unsynced_bytes(&self) -> usize {
        self.files.lock().unwrap().values().map(File::unsynced_bytes).sum()
    }
}

impl Disk for SimDisk {
    fn read(&self, file: &str) -> Option<Vec<u8>> {
        let files = self.files.lock().unwrap();
        files.get(file).filter(|f| f.exists).map(|f| f.data.to_vec())
    }

    fn read_range(&self, file: &str, start: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        self.visit_range(file, start, len, &mut |piece| out.extend_from_slice(piece)).then_some(out)
    }

    fn visit_range(&self, file: &str, start: u64, len: usize, visit: &mut dyn FnMut(&[u8])) -> bool {
        let files = self.files.lock().unwrap();
        let Some(f) = files.get(file).filter(|f| f.exists) else { return false };
        let Ok(start) = usize::try_from(start) else { return false };
        f.data.visit_range(start, len, visit)
    }

    fn append(&self, file: &str, bytes: Vec<u8>) {
        let mut files = self.files.lock().unwrap();
        let f = files.entry(file.to_string()).or_default();
        if !f.exists {
            f.rewrite(Some(&[]));
        }
        f.data.append(bytes);
    }

    fn replace(&self, file: &str, bytes: &[u8]) {
        let mut files = self.files.lock().unwrap();
        files.entry(file.to_string()).or_default().rewrite(Some(bytes));
    }

    fn truncate(&self, file: &str, len: u64) {
        let mut files = self.files.lock().unwrap();
        let Some(f) = files.get_mut(file).filter(|f| f.exists) else { return };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len >= f.data.len {
            return;
        }
        if len < f.synced_len && f.before_rewrite.is_none() {
            // Cutting into synced bytes: until the next sync, a crash brings them back.
            f.before_rewrite = Some(f.durable());
        }
        f.data.truncate(len);
        f.synced_len = f.synced_len.min(len);
    }

    fn remove(&self, file: &str) {
        let mut files = self.files.lock().unwrap();
        if let Some(f) = files.get_mut(file) {
            let mut removals = self.removals.lock().unwrap();
            if f.exists && removals.prefix.as_ref().is_some_and(|prefix| file.starts_with(prefix.as_str())) {
                let now_ms = madsim::time::TimeHandle::current().elapsed().as_millis() as u64;
                removals.kept.push((now_ms, file.to_string()));
            }
            f.rewrite(None);
        }
    }

    fn sync(&self, file: &str) {
        if self.skip_sync.lock().unwrap().as_ref().is_some_and(|prefix| file.starts_with(prefix.as_str())) {
            return;
        }
        let mut files = self.files.lock().unwrap();
        if let Some(f) = files.get_mut(file) {
            f.before_rewrite = None;
            f.synced_len = f.data.len;
            if !f.exists {
                return;
            }
            let now_ms = || madsim::time::TimeHandle::current().elapsed().as_millis() as u64;
            if let Some(versions) = self.watched.lock().unwrap().get_mut(file) {
                versions.push((now_ms(), f.data.to_vec()));
            }
            let mut first = self.first_syncs.lock().unwrap();
            if first.prefix.as_ref().is_some_and(|prefix| file.starts_with(prefix.as_str())) {
                first.kept.entry(file.to_string()).or_insert_with(now_ms);
            }
        }
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        let files = self.files.lock().unwrap();
        files.iter().filter(|(n, f)| f.exists && n.starts_with(prefix)).map(|(n, _)| n.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a file's frames chunk by chunk gives what reading the whole file gives: with a
    /// frame per append, with a torn tail, with frames that span chunks after a rewrite and
    /// appends, and with a torn frame followed by more appends.
    #[test]
    fn a_file_s_frames_read_by_chunks_are_the_whole_file_s() {
        let frame = |n: u8| codec::framed(&vec![n; 10 + usize::from(n)]);
        let same = |disk: &SimDisk| {
            let file = disk.contents("log").expect("the file exists");
            let whole = disk.read("log").unwrap();
            assert_eq!(file.frames(), codec::frames(&whole));
            assert_eq!(file.len(), whole.len());
        };
        let disk = SimDisk::default();
        (0..4).for_each(|n| disk.append("log", frame(n)));
        same(&disk);
        assert_eq!(disk.contents("log").unwrap().frames().0.len(), 4);
        disk.append("log", frame(9)[..7].to_vec());
        same(&disk);
        let two = [frame(1), frame(2)].concat();
        disk.replace("log", &two[..5]);
        disk.append("log", two[5..].to_vec());
        disk.append("log", frame(3));
        same(&disk);
        assert_eq!(disk.contents("log").unwrap().frames().0.len(), 3, "the spanning frame is read");
        disk.append("log", frame(4)[..12].to_vec());
        disk.append("log", frame(5));
        same(&disk);
        disk.sync("log");
        let held = disk.contents("log").unwrap();
        disk.truncate("log", 3);
        assert_eq!(held.frames().0.len(), 3, "a handle keeps the contents it was given");
        same(&disk);
    }

    #[test]
    fn crash_keeps_synced_appends_only() {
        let disk = SimDisk::default();
        disk.append("log", b"abc".to_vec());
        disk.sync("log");
        disk.append("log", b"def".to_vec());
        disk.append("log", b"g".to_vec());
        assert_eq!(disk.read_range("log", 2, 3).unwrap(), b"cde");
        assert!(disk.read_range("log", 5, 3).is_none());
        assert_eq!(disk.read("log").unwrap(), b"abcdefg");
        assert_eq!(disk.unsynced_bytes(), 4);
        disk.crash();
        assert_eq!(disk.read("log").unwrap(), b"abc");
        disk.append("log", b"hi".to_vec());
        disk.sync("log");
        disk.crash();
        assert_eq!(disk.read("log").unwrap(), b"abchi");
    }

    #[test]
    fn crash_undoes_unsynced_replace_and_remove() {
        let disk = SimDisk::default();
        disk.replace("meta", b"v1");
        disk.sync("meta");
        disk.replace("meta", b"v2");
        disk.crash();
        assert_eq!(disk.read("meta").unwrap(), b"v1");
        disk.remove("meta");
        assert!(disk.read("meta").is_none());
        disk.crash();
        assert_eq!(disk.read("meta").unwrap(), b"v1");
        disk.append("new", b"x".to_vec());
        disk.crash();
        assert!(disk.read("new").is_none());
        assert_eq!(disk.list(""), vec!["meta".to_string()]);
    }

    #[test]
    fn truncate_is_durable_only_once_synced() {
        let disk = SimDisk::default();
        disk.append("f", b"abcdef".to_vec());
        disk.sync("f");
        disk.truncate("f", 2);
        assert_eq!(disk.read("f").unwrap(), b"ab");
        disk.crash();
        assert_eq!(disk.read("f").unwrap(), b"abcdef");
        disk.truncate("f", 3);
        disk.append("f", b"X".to_vec());
        disk.sync("f");
        disk.crash();
        assert_eq!(disk.read("f").unwrap(), b"abcX");
    }

    #[test]
    fn replace_then_append_then_crash_restores_the_old_file() {
        let disk = SimDisk::default();
        disk.append("f", b"old".to_vec());
        disk.sync("f");
        disk.replace("f", b"n");
        disk.append("f", b"ew".to_vec());
        assert_eq!(disk.read("f").unwrap(), b"new");
        disk.crash();
        assert_eq!(disk.read("f").unwrap(), b"old");
    }

    #[test]
    fn removals_under_the_watched_prefix_are_kept_with_their_time() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        let kept = rt.block_on(async {
            let disk = SimDisk::default();
            disk.watch_removals("checkpoints/");
            for file in ["checkpoints/1/meta", "history/1", "checkpoints/2/meta"] {
                disk.append(file, b"x".to_vec());
                disk.sync(file);
            }
            madsim::time::sleep(std::time::Duration::from_millis(7)).await;
            disk.remove("checkpoints/1/meta");
            disk.remove("history/1"); // outside the prefix
            disk.remove("checkpoints/9/meta"); // never written: nothing removed
            disk.removals()
        });
        assert_eq!(kept, [(7, "checkpoints/1/meta".to_string())]);
    }

    #[test]
    fn the_first_sync_of_each_file_under_the_watched_prefix_is_kept() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        let kept = rt.block_on(async {
            let disk = SimDisk::default();
            disk.watch_first_syncs("history/");
            disk.replace("history/2", b"");
            disk.replace("meta", b"x"); // outside the prefix
            disk.sync("meta");
            madsim::time::sleep(std::time::Duration::from_millis(3)).await;
            disk.sync("history/2");
            disk.replace("history/1", b"");
            disk.crash(); // history/1 was never durable
            madsim::time::sleep(std::time::Duration::from_millis(4)).await;
            disk.replace("history/1", b"");
            disk.sync("history/1");
            disk.sync("history/2"); // synced again: the first sync stands
            disk.first_syncs()
        });
        assert_eq!(kept, [(7, "history/1".to_string()), (3, "history/2".to_string())]);
    }
}
