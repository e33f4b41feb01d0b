//! Parsing the board and product areas of IPMI FRU data (Platform Management
//! FRU Information Storage Definition v1.0, sections 8, 10, 11 and 13).

/// The fields identify() needs from FRU 0.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FruInfo {
    pub board_manufacturer: Option<String>,
    pub board_product: Option<String>,
    pub board_serial: Option<String>,
    pub product_manufacturer: Option<String>,
    pub product_name: Option<String>,
    pub product_serial: Option<String>,
}

impl FruInfo {
    pub fn serial(&self) -> Option<String> {
        self.product_serial.clone().or(self.board_serial.clone())
    }
    pub fn manufacturer(&self) -> Option<String> {
        self.product_manufacturer
            .clone()
            .or(self.board_manufacturer.clone())
    }
    pub fn product(&self) -> Option<String> {
        self.product_name.clone().or(self.board_product.clone())
    }
}

/// How many bytes of FRU data cover the common header and the board and
/// product areas (so reads can stop there), or `None` if the header is bad.
pub fn needed_len(header: &[u8]) -> Option<usize> {
    let header = valid_header(header)?;
    let mut end = 8;
    // Area offsets are in multiples of 8 bytes; an area's length is its byte 1.
    for offset in [header[3], header[4]] {
        if offset != 0 {
            end = end.max(usize::from(offset) * 8 + 2);
        }
    }
    Some(end)
}

/// Where the board and product areas end, from their length bytes (which
/// must be in `data`; see [`needed_len`]).
pub fn areas_end(data: &[u8]) -> usize {
    let mut end = data.len().min(8);
    for offset in [data.get(3), data.get(4)].into_iter().flatten() {
        let start = usize::from(*offset) * 8;
        if let (true, Some(len)) = (*offset != 0, data.get(start + 1)) {
            end = end.max(start + usize::from(*len) * 8);
        }
    }
    end
}

fn valid_header(data: &[u8]) -> Option<&[u8]> {
    let header = data.get(..8)?;
    // Section 8: format version 1, and the bytes sum to zero.
    let sum = header.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    (header[0] & 0x0F == 0x01 && sum == 0).then_some(header)
}

/// Parses the board and product areas; missing or damaged areas leave their
/// fields `None`.
pub fn parse(data: &[u8]) -> Option<FruInfo> {
    let header = valid_header(data)?;
    let mut info = FruInfo::default();
    // Board area: version, length, language, 3-byte mfg date, then fields
    // manufacturer, product name, serial number, part number.
    if let Some(fields) = area_fields(data, header[3], 6) {
        let mut f = fields.into_iter();
        info.board_manufacturer = f.next().flatten();
        info.board_product = f.next().flatten();
        info.board_serial = f.next().flatten();
    }
    // Product area: version, length, language, then manufacturer, product
    // name, part/model number, version, serial number.
    if let Some(fields) = area_fields(data, header[4], 3) {
        let f: Vec<_> = fields.into_iter().collect();
        info.product_manufacturer = f.first().cloned().flatten();
        info.product_name = f.get(1).cloned().flatten();
        info.product_serial = f.get(4).cloned().flatten();
    }
    Some(info)
}

fn area_fields(data: &[u8], offset8: u8, skip: usize) -> Option<Vec<Option<String>>> {
    if offset8 == 0 {
        return None;
    }
    let start = usize::from(offset8) * 8;
    let len = usize::from(*data.get(start + 1)?) * 8;
    let area = data.get(start..start + len)?;
    if area.iter().fold(0u8, |a, b| a.wrapping_add(*b)) != 0 {
        return None;
    }
    let mut fields = Vec::new();
    let mut pos = skip;
    // Type/length byte 0xC1 ends the fields (section 10).
    while let Some(&tl) = area.get(pos) {
        if tl == 0xC1 {
            break;
        }
        let n = usize::from(tl & 0x3F);
        let bytes = area.get(pos + 1..pos + 1 + n)?;
        fields.push(decode(tl >> 6, bytes));
        pos += 1 + n;
    }
    Some(fields)
}

/// Decodes one field by its type code (section 13.1); empty fields are `None`.
fn decode(kind: u8, bytes: &[u8]) -> Option<String> {
    let s = match kind {
        // 8-bit ASCII + Latin-1.
        0b11 => bytes.iter().map(|&b| char::from(b)).collect::<String>(),
        // 6-bit packed ASCII: 4 characters in 3 bytes, each +0x20.
        0b10 => {
            let mut bits: u32 = 0;
            let mut nbits = 0;
            let mut s = String::new();
            for &b in bytes {
                bits |= u32::from(b) << nbits;
                nbits += 8;
                while nbits >= 6 {
                    s.push(char::from((bits & 0x3F) as u8 + 0x20));
                    bits >>= 6;
                    nbits -= 6;
                }
            }
            s
        }
        // BCD plus: digits, space, dash, dot.
        0b01 => bytes
            .iter()
            .flat_map(|b| [b & 0x0F, b >> 4])
            .map(|d| match d {
                0..=9 => char::from(b'0' + d),
                0xA => ' ',
                0xB => '-',
                0xC => '.',
                _ => '?',
            })
            .collect(),
        // Binary or unspecified: hex.
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> Vec<u8> {
        let mut v = vec![0xC0 | s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn area(prefix: &[u8], fields: &[&str]) -> Vec<u8> {
        let mut a = prefix.to_vec();
        for f in fields {
            a.extend(field(f));
        }
        a.push(0xC1);
        while !(a.len() + 1).is_multiple_of(8) {
            a.push(0);
        }
        a[1] = ((a.len() + 1) / 8) as u8;
        let sum = a.iter().fold(0u8, |x, y| x.wrapping_add(*y));
        a.push(0u8.wrapping_sub(sum));
        a
    }

    /// The same layout deploy/lab/ipmi-sim.sh writes for its BMCs.
    fn sample() -> Vec<u8> {
        let board = area(&[1, 0, 0x19, 0, 0, 0], &["Acme", "Board-X", "BSN-1", "PN"]);
        let product = area(
            &[1, 0, 0x19],
            &["Acme Corp", "Server-9", "M1", "v1", "PSN-7"],
        );
        let mut hdr = vec![1, 0, 0, 1, 1 + (board.len() / 8) as u8, 0, 0];
        let sum = hdr.iter().fold(0u8, |x, y| x.wrapping_add(*y));
        hdr.push(0u8.wrapping_sub(sum));
        [hdr, board, product].concat()
    }

    #[test]
    fn parses_board_and_product_areas() {
        let data = sample();
        assert!(needed_len(&data).unwrap() <= data.len());
        assert_eq!(areas_end(&data), data.len());
        let info = parse(&data).unwrap();
        assert_eq!(info.board_serial.as_deref(), Some("BSN-1"));
        assert_eq!(info.serial().as_deref(), Some("PSN-7"));
        assert_eq!(info.manufacturer().as_deref(), Some("Acme Corp"));
        assert_eq!(info.product().as_deref(), Some("Server-9"));
    }

    #[test]
    fn bad_checksums_are_not_trusted() {
        let mut data = sample();
        data[7] ^= 0xFF;
        assert!(parse(&data).is_none());
        let mut data = sample();
        data[20] ^= 0x01; // inside the board area
        let info = parse(&data).unwrap();
        assert_eq!(info.board_serial, None);
        assert_eq!(info.product_serial.as_deref(), Some("PSN-7"));
    }

    #[test]
    fn six_bit_ascii_and_bcd() {
        // "IPMI" in 6-bit packed ASCII (spec section 13.1 example encoding).
        let packed = [0x29, 0xDC, 0xA6];
        assert_eq!(decode(0b10, &packed).as_deref(), Some("IPMI"));
        assert_eq!(decode(0b01, &[0x21, 0xB3]).as_deref(), Some("123-"));
        assert_eq!(decode(0b11, b"  "), None);
    }
}
