//! `responses-double`: OpenAI's Responses API on loopback. See README.md.
fn main() {
    std::process::exit(cloud_doubles::serve(cloud_doubles::responses::router()));
}
