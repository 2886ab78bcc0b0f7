fn main() {
    println!("burstd");
}
