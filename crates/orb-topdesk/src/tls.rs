//! Extra trust roots for an on-premises TOPdesk whose certificate is issued by the customer's own CA
//! (installation setting `[topdesk] ca_file`): a PEM bundle of one or more CA certificates, each checked
//! to be a certificate a TLS handshake can anchor to before the client is built with it.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Parses a PEM bundle of CA certificates into their DER, refusing a bundle with no certificate, a broken
/// PEM section or a section that is not a usable X.509 CA certificate. The error says which.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for (i, section) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let der = section.map_err(|e| format!("certificate {} is not valid PEM ({e})", i + 1))?;
        webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| format!("certificate {} is not a usable X.509 certificate ({e:?})", i + 1))?;
        out.push(der.to_vec());
    }
    if out.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_bundle_of_ca_certificates_parses_and_garbage_is_refused() {
        let bundle = format!("{}\n{}", ca_pem("ca-one.contoso.local"), ca_pem("ca-two.contoso.local"));
        assert_eq!(parse_ca_bundle(bundle.as_bytes()).unwrap().len(), 2);
        for (bad, needle) in [
            ("", "holds no PEM certificate"),
            ("not a certificate at all", "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate 1 is not a usable",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "certificate 1 is not valid PEM",
            ),
        ] {
            let err = parse_ca_bundle(bad.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
        let mixed = format!("{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ca_pem("ok"));
        assert!(parse_ca_bundle(mixed.as_bytes()).unwrap_err().contains("certificate 2"));
    }
}
