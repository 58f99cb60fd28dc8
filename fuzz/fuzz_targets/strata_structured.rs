//! The `.strata` reader past its checksums: the input is a container whose checksums (and
//! header length) this target re-signs before reading, so mutations of the header's contents
//! (graph text, tensor directory, shapes, block table, plane layout) reach the code behind
//! the CRC checks instead of stopping at them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_ir::container::format::Header;
use strata_ir::container::{read_container, PREFIX_LEN};

fuzz_target!(|data: &[u8]| {
    if let Some(file) = resign(data) {
        if let Ok(loaded) = read_container(&file) {
            let _ = strata_compiler::inspect::summarize(&loaded.graph);
        }
    }
});

/// The input with a correct header length and CRC and, when the header decodes, a correct CRC
/// for every block that lies inside the file.
fn resign(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < PREFIX_LEN {
        return None;
    }
    let declared = u64::from_le_bytes(data[12..20].try_into().ok()?);
    let header_len = declared.min((data.len() - PREFIX_LEN) as u64) as usize;
    let header_end = PREFIX_LEN + header_len;
    let header_bytes = &data[PREFIX_LEN..header_end];
    let rest = &data[header_end..];
    let header_bytes = match Header::decode(header_bytes) {
        Ok(mut header) => {
            // Blocks are addressed from the start of the file; re-encoding the header may
            // change its length (unknown fields are dropped), so re-address them too.
            let new_len = header.encoded_len();
            let shift = new_len as i64 - header_len as i64;
            for block in &mut header.blocks {
                block.offset = (block.offset as i64).wrapping_add(shift) as u64;
            }
            let mut out = Vec::with_capacity(new_len);
            header.encode(&mut out).ok()?;
            // Blocks are hashed against the final layout.
            let file_len = (PREFIX_LEN + out.len() + rest.len()) as u64;
            let base = (PREFIX_LEN + out.len()) as u64;
            for block in &mut header.blocks {
                let end = block.offset.checked_add(block.length);
                if block.offset >= base && end.is_some_and(|e| e <= file_len) {
                    let start = (block.offset - base) as usize;
                    block.crc32 = crc32fast::hash(&rest[start..start + block.length as usize]);
                }
            }
            out.clear();
            header.encode(&mut out).ok()?;
            out
        }
        Err(_) => header_bytes.to_vec(),
    };
    let mut file = Vec::with_capacity(PREFIX_LEN + header_bytes.len() + rest.len());
    file.extend_from_slice(&data[..12]);
    file.extend_from_slice(&(header_bytes.len() as u64).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(&header_bytes).to_le_bytes());
    file.extend_from_slice(&header_bytes);
    file.extend_from_slice(rest);
    Some(file)
}
