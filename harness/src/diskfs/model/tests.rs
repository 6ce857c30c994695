//! The store against an independent in-memory oracle of power-loss semantics: each file
//! reverts to its contents at its last fsync, each directory to its entries at its last
//! fsync, and the tree after a loss is what the root's durable entries reach.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;

use proptest::prelude::*;

use super::*;

/// A path-level view of the store, as a process sees it through the mount.
struct Fs {
    store: Store,
    _dir: tempfile::TempDir,
}

impl Fs {
    fn new() -> Fs {
        let dir = tempfile::tempdir().unwrap();
        Fs {
            store: Store::open(dir.path()).unwrap(),
            _dir: dir,
        }
    }
    fn resolve(&mut self, path: &str) -> io::Result<u64> {
        let mut ino = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.store.lookup(ino, OsStr::new(part))?.0;
        }
        Ok(ino)
    }
    fn split(path: &str) -> (&str, &str) {
        path.rsplit_once('/').unwrap_or(("", path))
    }
    fn create(&mut self, path: &str) -> io::Result<()> {
        let (d, n) = Self::split(path);
        let p = self.resolve(d)?;
        self.store.create(p, OsStr::new(n), 0o644).map(|_| ())
    }
    fn mkdir(&mut self, path: &str) -> io::Result<()> {
        let (d, n) = Self::split(path);
        let p = self.resolve(d)?;
        self.store.mkdir(p, OsStr::new(n), 0o755).map(|_| ())
    }
    fn write(&mut self, path: &str, off: u64, data: &[u8]) -> io::Result<()> {
        let ino = self.resolve(path)?;
        let f = self.store.open_file(ino, true)?;
        self.store.write(ino, &f, off, data).map(|_| ())
    }
    fn truncate(&mut self, path: &str, size: u64) -> io::Result<()> {
        let ino = self.resolve(path)?;
        let f = self.store.open_file(ino, true)?;
        self.store.set_len(ino, &f, size)
    }
    fn fsync(&mut self, path: &str) -> io::Result<()> {
        let ino = self.resolve(path)?;
        if self.store.getattr(ino)?.1.is_dir() {
            self.store.fsync_dir(ino);
        } else {
            self.store.fsync_file(ino);
        }
        Ok(())
    }
    fn unlink(&mut self, path: &str) -> io::Result<()> {
        let (d, n) = Self::split(path);
        let p = self.resolve(d)?;
        self.store.unlink(p, OsStr::new(n))
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let (d1, n1) = Self::split(from);
        let (d2, n2) = Self::split(to);
        let p1 = self.resolve(d1)?;
        let p2 = self.resolve(d2)?;
        self.store
            .rename(p1, OsStr::new(n1), p2, OsStr::new(n2), false)
    }
    /// The whole visible tree: path to `None` (directory) or the file's bytes.
    fn tree(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let root = self.store.root_dir();
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(root.join(&rel)).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let p = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if e.metadata().unwrap().is_dir() {
                    stack.push(p.clone());
                    out.insert(p, None);
                } else {
                    out.insert(p, Some(fs::read(e.path()).unwrap()));
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
enum Node {
    File(usize),
    Dir(usize),
}

/// The oracle: files and directories by id, their current and durable states.
#[derive(Default)]
struct Oracle {
    files: Vec<Vec<u8>>,
    durable_files: Vec<Vec<u8>>,
    dirs: Vec<BTreeMap<String, Node>>,
    durable_dirs: Vec<BTreeMap<String, Node>>,
}

impl Oracle {
    fn new() -> Oracle {
        Oracle {
            dirs: vec![BTreeMap::new()],
            durable_dirs: vec![BTreeMap::new()],
            ..Default::default()
        }
    }
    fn dir_of(&self, path: &str) -> Option<usize> {
        let mut d = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match self.dirs[d].get(part)? {
                Node::Dir(x) => d = *x,
                Node::File(_) => return None,
            }
        }
        Some(d)
    }
    fn lookup(&self, path: &str) -> Option<Node> {
        let (d, n) = Fs::split(path);
        self.dirs[self.dir_of(d)?].get(n).cloned()
    }
    fn tree(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(0, String::new())];
        while let Some((d, rel)) = stack.pop() {
            for (name, node) in &self.dirs[d] {
                let p = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                match node {
                    Node::Dir(x) => {
                        stack.push((*x, p.clone()));
                        out.insert(p, None);
                    }
                    Node::File(f) => {
                        out.insert(p, Some(self.files[*f].clone()));
                    }
                }
            }
        }
        out
    }
    /// Power loss: the durable tree, every file and directory a fresh copy.
    fn lose(&mut self) {
        let mut files = Vec::new();
        let mut dirs = vec![BTreeMap::new()];
        let mut todo = vec![(0usize, 0usize)];
        let mut seen = std::collections::BTreeSet::new();
        while let Some((old, new)) = todo.pop() {
            if !seen.insert(old) {
                continue;
            }
            for (name, node) in self.durable_dirs[old].clone() {
                let n = match node {
                    Node::File(f) => {
                        files.push(self.durable_files[f].clone());
                        Node::File(files.len() - 1)
                    }
                    Node::Dir(d) => {
                        dirs.push(BTreeMap::new());
                        todo.push((d, dirs.len() - 1));
                        Node::Dir(dirs.len() - 1)
                    }
                };
                dirs[new].insert(name, n);
            }
        }
        self.durable_files = files.clone();
        self.files = files;
        self.durable_dirs = dirs.clone();
        self.dirs = dirs;
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create(&'static str),
    Mkdir(&'static str),
    Write(&'static str, u64, u8, u8),
    Truncate(&'static str, u64),
    Fsync(&'static str),
    Unlink(&'static str),
    Rename(&'static str, &'static str),
    Lose,
}

const FILES: [&str; 5] = ["a", "b", "d/a", "d/c", "e/b"];
const DIRS: [&str; 3] = ["", "d", "e"];

fn op() -> impl Strategy<Value = Op> {
    let f = prop::sample::select(FILES.to_vec());
    let d = prop::sample::select(DIRS.to_vec());
    prop_oneof![
        2 => f.clone().prop_map(Op::Create),
        1 => prop::sample::select(vec!["d", "e"]).prop_map(Op::Mkdir),
        5 => (f.clone(), 0..40u64, 1..30u8, any::<u8>()).prop_map(|(p, o, l, b)| Op::Write(p, o, l, b)),
        1 => (f.clone(), 0..50u64).prop_map(|(p, s)| Op::Truncate(p, s)),
        3 => f.clone().prop_map(Op::Fsync),
        3 => d.prop_map(Op::Fsync),
        1 => f.clone().prop_map(Op::Unlink),
        2 => (f.clone(), f).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => Just(Op::Lose),
    ]
}

/// Applies `op` to both; the oracle only where the store succeeded (the store decides
/// errors such as a missing parent; the oracle checks the effects).
fn apply(fs: &mut Fs, o: &mut Oracle, op: &Op) {
    match *op {
        Op::Create(p) => {
            if fs.create(p).is_ok() {
                let (d, n) = Fs::split(p);
                let d = o.dir_of(d).unwrap();
                assert!(!o.dirs[d].contains_key(n), "create of existing {p}");
                o.files.push(Vec::new());
                o.durable_files.push(Vec::new());
                o.dirs[d].insert(n.into(), Node::File(o.files.len() - 1));
            } else {
                let (d, n) = Fs::split(p);
                assert!(
                    o.dir_of(d).is_none_or(|d| o.dirs[d].contains_key(n)),
                    "{op:?}"
                );
            }
        }
        Op::Mkdir(p) => {
            if fs.mkdir(p).is_ok() {
                o.dirs.push(BTreeMap::new());
                o.durable_dirs.push(BTreeMap::new());
                let n = o.dirs.len() - 1;
                o.dirs[0].insert(p.into(), Node::Dir(n));
            } else {
                assert!(o.dirs[0].contains_key(p), "{op:?}");
            }
        }
        Op::Write(p, off, len, byte) => {
            let data = vec![byte; len as usize];
            if fs.write(p, off, &data).is_ok() {
                let Some(Node::File(f)) = o.lookup(p) else {
                    panic!("{op:?} succeeded on a missing file")
                };
                let v = &mut o.files[f];
                if v.len() < (off + len as u64) as usize {
                    v.resize((off + len as u64) as usize, 0);
                }
                v[off as usize..(off + len as u64) as usize].copy_from_slice(&data);
            } else {
                assert!(!matches!(o.lookup(p), Some(Node::File(_))), "{op:?}");
            }
        }
        Op::Truncate(p, size) => {
            if fs.truncate(p, size).is_ok() {
                let Some(Node::File(f)) = o.lookup(p) else {
                    panic!("{op:?}")
                };
                o.files[f].resize(size as usize, 0);
            }
        }
        Op::Fsync(p) => {
            if fs.fsync(p).is_ok() {
                match o.lookup(p) {
                    Some(Node::File(f)) => o.durable_files[f] = o.files[f].clone(),
                    _ => {
                        let d = o.dir_of(p).unwrap();
                        o.durable_dirs[d] = o.dirs[d].clone();
                    }
                }
            }
        }
        Op::Unlink(p) => {
            if fs.unlink(p).is_ok() {
                let (d, n) = Fs::split(p);
                let d = o.dir_of(d).unwrap();
                o.dirs[d].remove(n).unwrap();
            }
        }
        Op::Rename(a, b) => {
            if fs.rename(a, b).is_ok() && a != b {
                let (d1, n1) = Fs::split(a);
                let (d2, n2) = Fs::split(b);
                let d1 = o.dir_of(d1).unwrap();
                let d2 = o.dir_of(d2).unwrap();
                let node = o.dirs[d1].remove(n1).unwrap();
                o.dirs[d2].insert(n2.into(), node);
            }
        }
        Op::Lose => {
            fs.store.lose_unfsynced(None).unwrap();
            o.lose();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_sequences_match_the_oracle(ops in prop::collection::vec(op(), 1..40)) {
        let mut fs = Fs::new();
        let mut o = Oracle::new();
        for (i, op) in ops.iter().enumerate() {
            apply(&mut fs, &mut o, op);
            prop_assert_eq!(fs.tree(), o.tree(), "after op {} {:?}", i, op);
        }
        fs.store.lose_unfsynced(None).unwrap();
        o.lose();
        prop_assert_eq!(fs.tree(), o.tree(), "after the final loss");
    }
}

#[test]
fn unsynced_writes_and_sizes_revert_synced_ones_stay() {
    let mut fs = Fs::new();
    fs.create("log").unwrap();
    fs.fsync("").unwrap();
    fs.write("log", 0, b"hello ").unwrap();
    fs.fsync("log").unwrap();
    fs.write("log", 6, b"world").unwrap();
    fs.write("log", 0, b"J").unwrap();
    fs.truncate("log", 3).unwrap();
    fs.truncate("log", 20).unwrap();
    let loss = fs.store.lose_unfsynced(None).unwrap();
    assert_eq!(fs.tree()["log"], Some(b"hello ".to_vec()));
    assert_eq!(loss.files, 1);
    assert_eq!(loss.ops_dropped, 4);
    assert_eq!(loss.bytes_dropped, 5 + 1 + 8 + 17);
    assert_eq!(loss.entries_reverted, 0);
    assert_eq!(fs.store.pending(), (0, 0));
}

#[test]
fn entries_need_a_directory_fsync() {
    let mut fs = Fs::new();
    // Created and data-synced, but the directory was never fsynced: gone.
    fs.create("new").unwrap();
    fs.write("new", 0, b"x").unwrap();
    fs.fsync("new").unwrap();
    // The classic atomic replace: write tmp, fsync it, rename over, fsync the directory.
    fs.create("state").unwrap();
    fs.write("state", 0, b"v1").unwrap();
    fs.fsync("state").unwrap();
    fs.fsync("").unwrap();
    fs.create("state.tmp").unwrap();
    fs.write("state.tmp", 0, b"v2").unwrap();
    fs.fsync("state.tmp").unwrap();
    fs.rename("state.tmp", "state").unwrap();
    // Without the directory fsync the old file comes back, with its old contents.
    let loss = fs.store.lose_unfsynced(None).unwrap();
    let t = fs.tree();
    assert_eq!(t["state"], Some(b"v1".to_vec()));
    assert_eq!(
        t["new"],
        Some(b"x".to_vec()),
        "fsynced before the dir fsync"
    );
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(loss.entries_reverted, 1, "state changed inode");
    // And with it, the new one stays.
    fs.create("state.tmp").unwrap();
    fs.write("state.tmp", 0, b"v2").unwrap();
    fs.fsync("state.tmp").unwrap();
    fs.rename("state.tmp", "state").unwrap();
    fs.unlink("new").unwrap();
    fs.fsync("").unwrap();
    fs.store.lose_unfsynced(None).unwrap();
    let t = fs.tree();
    assert_eq!(t["state"], Some(b"v2".to_vec()));
    assert_eq!(t.len(), 1, "{t:?}");
}

#[test]
fn a_new_directory_needs_its_parent_synced_and_unlinked_files_come_back() {
    let mut fs = Fs::new();
    fs.mkdir("wal").unwrap();
    fs.create("wal/0").unwrap();
    fs.write("wal/0", 0, b"entry").unwrap();
    fs.fsync("wal/0").unwrap();
    fs.fsync("wal").unwrap();
    fs.store.lose_unfsynced(None).unwrap();
    assert!(fs.tree().is_empty(), "the root was never fsynced");
    fs.mkdir("wal").unwrap();
    fs.create("wal/0").unwrap();
    fs.write("wal/0", 0, b"entry").unwrap();
    fs.fsync("wal/0").unwrap();
    fs.fsync("wal").unwrap();
    fs.fsync("").unwrap();
    fs.unlink("wal/0").unwrap();
    fs.store.lose_unfsynced(None).unwrap();
    assert_eq!(fs.tree()["wal/0"], Some(b"entry".to_vec()));
    // The trash is emptied once no durable listing names the file.
    fs.unlink("wal/0").unwrap();
    fs.fsync("wal").unwrap();
    assert_eq!(
        fs::read_dir(fs._dir.path().join("trash")).unwrap().count(),
        0
    );
}

#[test]
fn torn_losses_keep_a_random_subset_in_order() {
    let mut seen = HashMap::new();
    for seed in 0..40 {
        let mut fs = Fs::new();
        fs.create("f").unwrap();
        fs.write("f", 0, b"....").unwrap();
        fs.fsync("f").unwrap();
        fs.fsync("").unwrap();
        fs.write("f", 0, b"A").unwrap();
        fs.write("f", 2, b"C").unwrap();
        fs.write("f", 0, b"B").unwrap();
        let loss = fs.store.lose_unfsynced(Some(seed)).unwrap();
        assert_eq!(loss.ops_kept + loss.ops_dropped, 3);
        let got = fs.tree()["f"].clone().unwrap();
        // Each subset of {A@0, C@2, B@0}, applied in order over "....".
        let ok = [&b"...."[..], b"A...", b"..C.", b"B...", b"A.C.", b"B.C."];
        assert!(
            ok.contains(&&got[..]),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        *seen.entry(got).or_insert(0) += 1;
    }
    assert!(
        seen.len() >= 5,
        "only {} outcomes over 40 seeds",
        seen.len()
    );
    // Not only prefixes: C kept while A and B are dropped.
    assert!(seen.contains_key(b"..C.".as_slice()));
}

#[test]
fn corrupt_damages_one_file_and_says_how() {
    let mut fs = Fs::new();
    fs.mkdir("d").unwrap();
    fs.create("d/f").unwrap();
    fs.write("d/f", 0, &[7u8; 1000]).unwrap();
    fs.create("empty").unwrap();
    let mut hows = std::collections::BTreeSet::new();
    for seed in 0..30 {
        let before = fs.tree()["d/f"].clone().unwrap();
        let c = fs.store.corrupt(seed).unwrap().unwrap();
        assert_eq!(c.file, "d/f");
        let after = fs.tree()["d/f"].clone().unwrap();
        assert_ne!(before, after, "{c:?}");
        hows.insert(c.how.clone());
        assert_eq!(fs.store.undo_corruption().unwrap(), Some("d/f".into()));
        assert_eq!(fs.tree()["d/f"], Some(before));
        assert_eq!(fs.store.undo_corruption().unwrap(), None);
    }
    assert_eq!(hows.len(), 3, "{hows:?}");
    let mut empty = Fs::new();
    assert_eq!(empty.store.corrupt(1).unwrap(), None);
}
