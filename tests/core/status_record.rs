//! `status`'s record of compared modules (`<dkms_tree>/.dkms-rs.status`, src/tree/record.rs):
//! with it, without it, and with it stale, damaged or half-written, dkms-rs's `status` is
//! dkms 3.2.2's and dkms 3.0.10's (their suffixes in 3.2.2's words), on the same tree; and
//! both of them read a tree that has the record.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok};

const RECORD: &str = ".dkms-rs.status";

/// `status` by the three tools on `s`, which must say the same; dkms 3.2.2's stdout.
fn same_status(s: &Scratch, reference: &Path, why: &str) -> String {
    let theirs = ok(&mut s.dkms_3_2_2(reference, &["status"]));
    let old = support::suffixes_of_3_2_2(&ok(&mut s.dkms(&["status"])));
    let ours = ok(&mut s.dkms_rs(&["status"]));
    assert_eq!(ours, theirs, "{why}: dkms-rs (left) vs dkms 3.2.2 (right)");
    assert_eq!(
        old, theirs,
        "{why}: dkms 3.0.10 (left) vs dkms 3.2.2 (right)"
    );
    theirs
}

/// touch(1) -d with a file's mtime to the ns, as `stat -c %y` prints it.
pub(crate) fn mtime_text(file: &Path) -> String {
    let out = ok(support::command("stat").args(["-c", "%y"]).arg(file));
    out.trim_end().to_owned()
}

#[test]
fn status_with_its_record_is_dkms_3_2_2_s_and_3_0_10_s() {
    let Some(reference) = support::dkms_3_2_2_with(&["make", "unshare", "dkms", "touch", "stat"])
    else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    // Two modules alike but for their names (of one length): .ko files of one size.
    for m in ["recorda", "recordb"] {
        s.write_module(m, "1.0", "", TRIVIAL);
        ok(&mut s.dkms_rs(&["add", &format!("{m}/1.0")]));
        ok(&mut s.dkms_rs(&["build", &format!("{m}/1.0"), "-k", k]));
        ok(&mut s.dkms_rs(&["install", &format!("{m}/1.0"), "-k", k]));
    }
    let record = s.dkms_tree.join(RECORD);
    let (a, b) = (
        s.installed_module(k, "recorda"),
        s.installed_module(k, "recordb"),
    );

    // (a) Built and installed the same. Files younger than the record's settle time (2 s)
    // are compared and not recorded; after it, recorded.
    same_status(&s, &reference, "fresh install");
    std::thread::sleep(Duration::from_millis(2500));
    let fresh = same_status(&s, &reference, "no record yet");
    assert!(fresh.contains(": installed\n"), "{fresh}");
    let text = std::fs::read_to_string(&record).expect("status wrote its record");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("= ")).count(),
        2,
        "{text}"
    );
    // Read through the record (3.2.2 and 3.0.10 ran beside it above, and do again).
    assert_eq!(same_status(&s, &reference, "with the record"), fresh);
    let whole = std::fs::read(&record).unwrap();

    // (b) The installed recorda replaced in place by recordb (same size, same inode), its
    // mtime set back: only ctime tells; 3.2.2 says the difference, so must dkms-rs.
    let before = std::fs::metadata(&a).unwrap();
    let mtime = mtime_text(&a);
    assert_eq!(
        before.len(),
        std::fs::metadata(&b).unwrap().len(),
        "same-size modules"
    );
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, std::fs::read(&b).unwrap()).unwrap();
    ok(support::command("touch").arg("-d").arg(&mtime).arg(&a));
    let after = std::fs::metadata(&a).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    assert_ne!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );
    let differ = same_status(&s, &reference, "installed file replaced, mtime set back");
    assert_ne!(differ, fresh, "3.2.2 sees the replaced module");
    // Settled, then compared again with the new stat data recorded: the same answer.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(same_status(&s, &reference, "replaced, settled"), differ);
    assert_eq!(same_status(&s, &reference, "replaced, recorded"), differ);

    // (d) Directories are recorded with their listings and links: recordb's kernel link
    // replaced by one to another version, its module dir's mtime set back: only the dir's
    // ctime tells; 3.2.2 says "built", so must dkms-rs (not the recorded "installed").
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("d ") && l.contains(" recordb\t")),
        "recordb's module dir is in the record:\n{text}"
    );
    let module_dir = s.dkms_tree.join("recordb");
    let link = module_dir.join(format!("kernel-{k}-{}", support::arch()));
    let was = std::fs::read_link(&link).unwrap();
    let dir_mtime = mtime_text(&module_dir);
    let dir_before = std::fs::metadata(&module_dir).unwrap();
    let relink = |to: &Path| {
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(to, &link).unwrap();
        ok(support::command("touch")
            .arg("-d")
            .arg(&dir_mtime)
            .arg(&module_dir));
        let now = std::fs::metadata(&module_dir).unwrap();
        assert_eq!(
            (now.mtime(), now.mtime_nsec()),
            (dir_before.mtime(), dir_before.mtime_nsec())
        );
    };
    relink(&Path::new("9.9").join(k).join(support::arch()));
    let relinked = same_status(&s, &reference, "kernel link replaced, dir mtime set back");
    assert_ne!(relinked, differ, "3.2.2 sees the replaced link");
    relink(&was);
    assert_eq!(same_status(&s, &reference, "kernel link put back"), differ);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(same_status(&s, &reference, "put back, settled"), differ);
    assert_eq!(same_status(&s, &reference, "put back, recorded"), differ);

    // (c) Records that would say "same" for the replaced module if believed: the one from
    // before the change (stale: recorda's stat data are the old ones), the current one
    // with recorda's line forged to the current stat data but the checksum left (corrupt),
    // and that forged one cut short of its end line (a half-written record).
    let current = std::fs::read_to_string(&record).unwrap();
    let key_a = format!("\t{k}/updates/dkms/recorda.ko");
    let line_a = current
        .lines()
        .find(|l| l.ends_with(&key_a))
        .expect("recorda's line");
    assert!(line_a.starts_with("! "), "{line_a}");
    let forged_line = format!("= {}", &line_a[2..]);
    let forged = current.replace(line_a, &forged_line);
    let cut = &forged[..forged.find(&forged_line).unwrap() + forged_line.len() + 1];
    let variants: [(&str, &[u8]); 5] = [
        ("stale", &whole),
        ("forged without its checksum", forged.as_bytes()),
        ("truncated after the forged line", cut.as_bytes()),
        ("truncated to nothing", b""),
        ("garbage", b"\x00\xffnot a record\n"),
    ];
    for (what, bytes) in variants {
        std::fs::write(&record, bytes).unwrap();
        assert_eq!(same_status(&s, &reference, what), differ, "{what}");
    }

    // A write killed before its rename leaves a hidden temp file: status (and both dkms)
    // ignore it; the next command that takes the tree lock removes it.
    let leftover = s.dkms_tree.join(format!("{RECORD}.12345.dkms-rs-new"));
    std::fs::write(&leftover, &forged).unwrap();
    assert_eq!(same_status(&s, &reference, "leftover temp record"), differ);
    ok(&mut s.dkms_rs(&["uninstall", "recordb/1.0", "-k", k]));
    assert!(
        !leftover.exists(),
        "the locked command removed the leftover"
    );
    same_status(&s, &reference, "after uninstall");

    // The last module removed takes the record with it (nothing of dkms-rs left in the tree).
    ok(&mut s.dkms_rs(&["remove", "recorda/1.0", "--all"]));
    ok(&mut s.dkms_rs(&["remove", "recordb/1.0", "--all"]));
    assert!(!record.exists());
}
