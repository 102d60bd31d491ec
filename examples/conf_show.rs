//! `cargo run --example conf_show -- [--native|--bash] KERNEL ARCH PATH...`: print `conf show`
//! kv output for each PATH, through the chosen reader (default: native with bash hand-over).

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
        eprintln!("usage: conf_show [--native|--bash] KERNEL ARCH PATH...");
        std::process::exit(2);
    }
    let ctx = ResolveContext::new(&args[0], &args[1]);
    let mut code = 0;
    for path in &args[2..] {
        match conf::evaluate(Path::new(path), &ctx, reader) {
            Ok(res) => print!("{}", show::render(&res, ShowFormat::Kv)),
            Err(e) => {
                eprintln!("{e}");
                code = e.exit_code();
            }
        }
    }
    std::process::exit(code);
}
