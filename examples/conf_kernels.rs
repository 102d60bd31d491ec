//! `cargo run --example conf_kernels -- [--native|--bash] ARCH PATH KERNEL...`: read one
//! dkms.conf once ([`ConfFile`]), resolve it for each KERNEL and print `conf show` kv output for
//! each (what dkms-postinst does for every installed kernel; run under
//! `strace -f -e trace=openat` to count how often the dkms.conf is opened).

use std::path::Path;

use dkms::conf::{ConfFile, Reader, ResolveContext, ShowFormat, show};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let reader = match args.first().map(String::as_str) {
        Some("--native") => Reader::Native,
        Some("--bash") => Reader::Bash,
        _ => Reader::Auto,
    };
    if reader != Reader::Auto {
        args.remove(0);
    }
    if args.len() < 3 {
        eprintln!("usage: conf_kernels [--native|--bash] ARCH PATH KERNEL...");
        std::process::exit(2);
    }
    let arch = &args[0];
    let file = match ConfFile::read(Path::new(&args[1])) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    };
    let mut code = 0;
    for kernel in &args[2..] {
        let ctx = ResolveContext::new(kernel, arch);
        match file.evaluate(&ctx, reader) {
            Ok(res) => print!("# {kernel}\n{}", show::render(&res, ShowFormat::Kv)),
            Err(e) => {
                eprintln!("{kernel}: {e}");
                code = e.exit_code();
            }
        }
    }
    std::process::exit(code);
}
