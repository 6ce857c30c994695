//! The disk-fault filesystem through a real FUSE mount (root and /dev/fuse): what a
//! process writes through std::fs survives a simulated power loss only if it was fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use harness::diskfs;

fn mounts_with(path: &std::path::Path) -> usize {
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(path.to_str().unwrap()))
        .count()
}

#[test]
fn a_power_loss_through_the_mount_keeps_only_what_was_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("data");
    let m = diskfs::mount_node(&backing, &mnt, "t1").unwrap();
    assert_eq!(mounts_with(&mnt), 1);

    // A durable file: written, fsynced, its directory fsynced.
    let mut f = File::create(mnt.join("durable")).unwrap();
    f.write_all(b"committed").unwrap();
    f.sync_all().unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    // Unsynced writes on top of it, read back before the loss.
    f.write_all(b" and lost").unwrap();
    f.write_at(b"C", 0).unwrap();
    drop(f);
    assert_eq!(
        fs::read(mnt.join("durable")).unwrap(),
        b"Committed and lost"
    );
    // mmap-style reads see writes: read through a second handle while one writes.
    let mut w = OpenOptions::new()
        .read(true)
        .write(true)
        .open(mnt.join("durable"))
        .unwrap();
    w.seek(SeekFrom::End(0)).unwrap();
    w.write_all(b"!").unwrap();
    let mut s = String::new();
    File::open(mnt.join("durable"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "Committed and lost!");
    drop(w);
    // A file synced but whose directory entry never was; a directory never synced.
    let mut g = File::create(mnt.join("orphan")).unwrap();
    g.write_all(b"x").unwrap();
    g.sync_data().unwrap();
    drop(g);
    fs::create_dir(mnt.join("sub")).unwrap();
    fs::write(mnt.join("sub/f"), b"y").unwrap();
    // fallocate and truncate go through too.
    let h = OpenOptions::new()
        .write(true)
        .open(mnt.join("durable"))
        .unwrap();
    h.set_len(3).unwrap();
    drop(h);
    assert_eq!(fs::read(mnt.join("durable")).unwrap(), b"Com");
    assert!(m.store().pending().0 > 0);

    let loss = m.store().lose_unfsynced(None).unwrap();
    assert_eq!(fs::read(mnt.join("durable")).unwrap(), b"committed");
    assert!(!mnt.join("orphan").exists());
    assert!(!mnt.join("sub").exists());
    let mut names: Vec<_> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["durable"]);
    // " and lost", "C", "!", the 16 bytes cut by set_len(3), sub/f.
    assert_eq!(loss.bytes_dropped, 9 + 1 + 1 + 16 + 1, "{loss:?}");
    // orphan, sub, and sub/f.
    assert_eq!(loss.entries_reverted, 3, "{loss:?}");

    // The atomic-replace pattern done right survives.
    fs::write(mnt.join("state.tmp"), b"v2").unwrap();
    File::open(mnt.join("state.tmp"))
        .unwrap()
        .sync_all()
        .unwrap();
    fs::rename(mnt.join("state.tmp"), mnt.join("state")).unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    m.store().lose_unfsynced(None).unwrap();
    assert_eq!(fs::read(mnt.join("state")).unwrap(), b"v2");

    // A full disk: writes fail with ENOSPC until it is cleared.
    m.ctl.full.store(true, std::sync::atomic::Ordering::Relaxed);
    let e = fs::write(mnt.join("more"), b"z").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(28), "{e}");
    m.ctl
        .full
        .store(false, std::sync::atomic::Ordering::Relaxed);
    fs::write(mnt.join("more"), b"z").unwrap();
    // A slow disk: fsync takes the time asked.
    m.ctl
        .slow_ms
        .store(300, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::Instant::now();
    File::open(mnt.join("more")).unwrap().sync_all().unwrap();
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));

    m.unmount().unwrap();
    assert_eq!(mounts_with(&mnt), 0);
    // Durable state stays in the backing directory.
    assert_eq!(fs::read(backing.join("root/state")).unwrap(), b"v2");
}

#[test]
fn a_dropped_mount_is_unmounted() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("data");
    let m = diskfs::mount_node(&dir.path().join("b"), &mnt, "t2").unwrap();
    assert_eq!(mounts_with(&mnt), 1);
    // Our own live mounts are not leftovers.
    assert!(diskfs::leftovers().iter().all(|l| l.mountpoint != mnt));
    drop(m);
    assert_eq!(mounts_with(&mnt), 0);
}
