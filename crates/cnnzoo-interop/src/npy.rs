//! NumPy `.npy` arrays of float32 in C order: the batches and logits exchanged with PyTorch
//! scripts. Every size from the header is checked before anything is allocated.

use std::io::BufWriter;
use std::path::Path;

use npyz::WriterBuilder;

use crate::error::InteropError;

/// Largest element count accepted (16 GiB of float32): a header claiming more is damaged.
const MAX_ELEMENTS: u64 = 1 << 32;

/// Parses `.npy` bytes: (shape, values). The error says what is wrong.
pub fn parse_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    check_header(bytes)?;
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("not a .npy file: {e}"))?;
    if npy.order() != npyz::Order::C {
        return Err("Fortran-ordered array; save it C-ordered (np.ascontiguousarray)".into());
    }
    let shape = npy.shape().to_vec();
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("shape {shape:?} is too large (damaged header?)"))?;
    let payload = bytes.len() as u64;
    if count.saturating_mul(4) > payload {
        return Err(format!(
            "truncated: shape {shape:?} needs {count} float32 values, the file has {payload} bytes"
        ));
    }
    let values = npy
        .into_vec::<f32>()
        .map_err(|e| format!("expected float32 values: {e}"))?;
    if values.len() as u64 != count {
        return Err(format!(
            "shape {shape:?} needs {count} values, found {}",
            values.len()
        ));
    }
    let shape = shape.iter().map(|&d| d as usize).collect();
    Ok((shape, values))
}

/// Refuses a header that is not the flat dictionary NumPy writes (`{'descr': '<f4',
/// 'fortran_order': False, 'shape': (2, 3), }`) before npyz parses it: its parser takes
/// exponential time on nested brackets (found by fuzzing: 100 bytes of `{` ran for minutes).
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("not a .npy file (format version {v})")),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| format!("truncated header ({len} bytes announced)"))?;
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if len > 4096 || count(b'{') != 1 || count(b'}') != 1 || count(b'(') > 1 || count(b')') > 1 {
        return Err(
            "header is not a plain {'descr', 'fortran_order', 'shape'} dictionary (a structured or damaged array)"
                .into(),
        );
    }
    if count(b'[') > 0 {
        return Err("structured arrays are not supported: expected float32 values".into());
    }
    Ok(())
}

/// Reads a float32 C-order `.npy` file: (shape, values).
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>), InteropError> {
    let bytes = std::fs::read(path).map_err(|e| InteropError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_npy(&bytes).map_err(|reason| InteropError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes a float32 array as `.npy`.
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), InteropError> {
    let io = |e: std::io::Error| InteropError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let dims: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(io)?;
    writer.extend(values.iter().copied()).map_err(io)?;
    writer.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damaged_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write_npy(&path, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let (shape, values) = read_npy(&path).unwrap();
        assert_eq!((shape, values.len()), (vec![2, 3], 6));
        let bytes = std::fs::read(&path).unwrap();
        // Truncated payload.
        assert!(parse_npy(&bytes[..bytes.len() - 4]).is_err());
        // A shape whose product overflows u64.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let huge = text.replace("(2, 3)", "(9999999999999, 9999999999999)");
        let e = parse_npy(huge.as_bytes()).unwrap_err();
        assert!(e.contains("too large") || e.contains("not a .npy"), "{e}");
        assert!(parse_npy(b"garbage").unwrap_err().contains("not a .npy"));
        // The fuzzer's hang: nested braces in the header dictionary. Refused at once.
        let mut nested = b"\x93NUMPY\x01\x00\x76\x00{".to_vec();
        nested.extend(std::iter::repeat_n(b'{', 100));
        nested.extend_from_slice(b"'shape': (2, 3), }");
        nested.resize(10 + 0x76, b' ');
        nested.extend_from_slice(&[0; 24]);
        let started = std::time::Instant::now();
        let e = parse_npy(&nested).unwrap_err();
        assert!(e.contains("plain"), "{e}");
        assert!(started.elapsed().as_secs() < 1);
    }
}
