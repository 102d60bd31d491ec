//! `cargo run --example conf_kernels -- [--native|--bash] ARCH PATH KERNEL...`: resolve one
//! dkms.conf for each KERNEL in one process and print `conf show` kv output for each (what
//! dkms-postinst does for every installed kernel; run under `strace -f -e trace=openat` to
//! count how often the dkms.conf is opened).

use std::path::Path;

use dkms::conf::{self, Reader, ResolveContext, ShowFormat, show};

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
    let (arch, path) = (&args[0], Path::new(&args[1]));
    let mut code = 0;
    for kernel in &args[2..] {
        let ctx = ResolveContext::new(kernel, arch);
        match conf::evaluate(path, &ctx, reader) {
            Ok(res) => print!("# {kernel}\n{}", show::render(&res, ShowFormat::Kv)),
            Err(e) => {
                eprintln!("{kernel}: {e}");
                code = e.exit_code();
            }
        }
    }
    std::process::exit(code);
}
