//! What a verified client certificate tells authentication: its subject (RFC 4514 string), its
//! common name and its SHA-256 fingerprint.

use std::fmt::Write as _;

use rustls_pki_types::CertificateDer;
use stratus_model::TenantId;
use x509_parser::asn1_rs::{Any, Class, Tag, ToDer};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::files::{SHA256, parse};
use crate::listener::ClientCertificate;

/// Describes the end-entity certificate `der`, issued under `tenant`'s CA (or the listener-wide
/// CA for `None`). Fails only if the certificate cannot be parsed, which a certificate that
/// passed verification always can.
pub(super) fn client_certificate(
    der: &CertificateDer<'_>,
    tenant: Option<TenantId>,
) -> Result<ClientCertificate, rustls::CertificateError> {
    let cert = parse(der, 1).map_err(|_| rustls::CertificateError::BadEncoding)?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| attribute_text(cn.attr_value()));
    Ok(ClientCertificate {
        subject: rfc4514(subject),
        common_name,
        fingerprint_sha256: hex(SHA256.hash(der.as_ref()).as_ref()),
        tenant,
    })
}

/// Lowercase hexadecimal.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A distinguished name as RFC 4514 writes it: the last RDN first, RDNs separated by `,`,
/// multi-valued RDNs joined by `+`, well-known attribute types by short name, other types as
/// dotted OIDs with the value hex-encoded.
pub(super) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let value = attr.attr_value();
    match (short_name(&oid), attribute_text(value)) {
        (Some(name), Some(text)) => format!("{name}={}", escape(&text)),
        (Some(name), None) => format!("{name}={}", hex_value(value)),
        (None, _) => format!("{oid}={}", hex_value(value)),
    }
}

/// The RFC 4514 section 3 short names.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The value of a string-typed attribute.
fn attribute_text(value: &Any<'_>) -> Option<String> {
    if value.header.class() != Class::Universal {
        return None;
    }
    match value.header.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(value.data).ok().map(str::to_owned)
        }
        Tag::BmpString => {
            if !value.data.len().is_multiple_of(2) {
                return None;
            }
            let units = value
                .data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

/// `#` and the hex of the value's DER encoding (RFC 4514 section 2.4).
fn hex_value(value: &Any<'_>) -> String {
    match value.to_der_vec() {
        Ok(der) => format!("#{}", hex(&der)),
        Err(_) => format!("#{}", hex(value.data)),
    }
}

/// Escapes a string value (RFC 4514 section 2.4).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("q\"<>;\\"), "q\\\"\\<\\>\\;\\\\");
        assert_eq!(escape("plain text"), "plain text");
    }

    #[test]
    fn subject_is_written_last_rdn_first() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "device-1");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("certificate");
        let described = client_certificate(cert.der(), None).expect("parse");
        assert_eq!(described.subject, "CN=device-1,O=Acme\\, Inc.,C=DE");
        assert_eq!(described.common_name.as_deref(), Some("device-1"));
        assert_eq!(described.fingerprint_sha256.len(), 64);
        assert_eq!(
            described.fingerprint_sha256,
            hex(SHA256.hash(cert.der()).as_ref())
        );
    }

    #[test]
    fn fingerprint_is_sha256() {
        assert_eq!(
            hex(SHA256.hash(b"abc").as_ref()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
