//! The certificate credential from the PEM bundle an admin sends (`orb secret set … graph.certificate`):
//! a PKCS#8 key and the app's certificate, checked to belong together; every malformed bundle is refused
//! with what to fix; a good one gets tokens from the emulator's token endpoint (client assertion).

mod support;

use orb_graph::{CertificateCredential, ClientOptions, Credential};
use support::{World, corr};

/// A fresh RSA key (PKCS#8 PEM) and a self-signed certificate for it (PEM).
fn key_and_cert() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["orb.test".to_owned()]).unwrap().self_signed(&key).unwrap();
    (key.serialize_pem(), cert.pem(), cert.der().to_vec())
}

#[test]
fn bundles_are_checked_and_refusals_say_what_to_fix() {
    let (key, cert, _) = key_and_cert();
    let (_, other_cert, _) = key_and_cert();
    assert!(CertificateCredential::from_pem(format!("{key}{cert}").as_bytes()).is_ok());
    assert!(CertificateCredential::from_pem(format!("{cert}\n{key}").as_bytes()).is_ok(), "any order");
    let pkcs1 =
        key.replace("BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY").replace("END PRIVATE", "END RSA PRIVATE");
    let broken_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for (bundle, needle) in [
        (cert.clone(), "no PKCS#8 private key"),
        (key.clone(), "no certificate"),
        (format!("{pkcs1}{cert}"), "convert it to PKCS#8"),
        (format!("{key}{other_cert}"), "does not belong to the private key"),
        (format!("{key}{broken_cert}"), "not a valid X.509 certificate"),
        ("just some text".to_owned(), "no PKCS#8 private key"),
    ] {
        let err = CertificateCredential::from_pem(bundle.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!err.contains("MII"), "no key material in the message: {err}");
    }
}

#[tokio::test]
async fn a_checked_bundle_signs_assertions_the_token_endpoint_accepts() {
    let world = World::start().await;
    let (key, cert, der) = key_and_cert();
    world.em.add_app_certificate(support::TENANT, support::CLIENT_ID, &der);
    let credential = CertificateCredential::from_pem(format!("{key}{cert}").as_bytes()).unwrap();
    let client = world.client_with(Credential::Certificate(credential), ClientOptions::default());
    assert_eq!(client.list_rooms(corr()).await.unwrap().len(), 2);
}
