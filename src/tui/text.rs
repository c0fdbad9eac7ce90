//! Small text helpers the state and the views share.

/// "1 notice", "3 notices".
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
