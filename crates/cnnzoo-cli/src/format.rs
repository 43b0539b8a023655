//! Human-readable numbers and shapes.

/// 25557032 -> "25.56M", 4089184256 -> "4.09G".
pub fn si(n: u64) -> String {
    let v = n as f64;
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else {
        n.to_string()
    }
}

/// 25557032 -> "25,557,032".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// [3, 224, 224] -> "3x224x224".
pub fn shape(dims: &[usize]) -> String {
    dims.iter()
        .map(std::string::ToString::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Most input channels a shape may have.
const MAX_CHANNELS: usize = 4096;
/// Longest input side in pixels.
const MAX_SIDE: usize = 65536;

/// "3x224x224" -> [3, 224, 224], with a readable error.
pub fn parse_shape(text: &str) -> anyhow::Result<[usize; 3]> {
    let parts: Vec<&str> = text.trim().split(['x', 'X']).collect();
    let dims: Option<Vec<usize>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
    match dims.as_deref() {
        Some([c, h, w])
            if (1..=MAX_CHANNELS).contains(c)
                && (1..=MAX_SIDE).contains(h)
                && (1..=MAX_SIDE).contains(w) =>
        {
            Ok([*c, *h, *w])
        }
        _ => anyhow::bail!(
            "input shape '{text}' is not CxHxW with 1 to {MAX_CHANNELS} channels and sides of 1 to {MAX_SIDE} pixels (e.g. 3x224x224)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_shapes() {
        assert_eq!(thousands(25_557_032), "25,557,032");
        assert_eq!(thousands(999), "999");
        assert_eq!(si(4_089_184_256), "4.09G");
        assert_eq!(si(269_722), "269.7K");
        assert_eq!(shape(&[3, 32, 32]), "3x32x32");
        assert_eq!(parse_shape("1x28x28").unwrap(), [1, 28, 28]);
        assert!(parse_shape("3x224").is_err());
        assert!(parse_shape("0x2x2").is_err());
        assert!(
            parse_shape("ax2x2")
                .unwrap_err()
                .to_string()
                .contains("CxHxW")
        );
    }
}
