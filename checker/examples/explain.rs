//! Prints the text report of a history: `cargo run -p checker --example explain FILE [MODEL]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: explain FILE [MODEL]");
        std::process::exit(3);
    };
    let loaded = match checker::format::load(std::path::Path::new(&path), None) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    };
    let model = args
        .next()
        .and_then(|m| checker::ModelKind::from_id(&m))
        .unwrap_or(loaded.format.default_model());
    let opts = checker::CheckOptions::for_format(model, loaded.format);
    match checker::check_history(&loaded.ops, &opts) {
        Ok(r) => print!("{}", checker::report::text(&r)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    }
}
