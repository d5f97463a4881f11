//! `gemini-double`: Google's Generative Language API (v1beta) on loopback. See README.md.
fn main() {
    std::process::exit(cloud_doubles::serve(cloud_doubles::gemini::router()));
}
