//! TLS to PostgreSQL, chosen by `sslmode`: rustls with the crypto provider the sender's HTTPS
//! client uses, and, for `sslmode=prefer`, a verifier that accepts any certificate (as libpq
//! does in that mode).

use crate::spool::SpoolError;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector for `mode`, `None` for a plain connection.
///
/// `require` (and `verify-ca`, `verify-full`): TLS, with the server's certificate and host name
/// verified against the system's roots. `prefer` (the default, as in libpq): TLS when the server
/// offers it, without verifying the certificate, which keeps the traffic from passive
/// eavesdroppers but not from an active attacker (use `verify-full` for that); plain when the
/// server has no TLS. `disable`: plain.
pub(super) fn connector(mode: SslMode) -> Result<Option<MakeRustlsConnect>, SpoolError> {
    Ok(match mode {
        SslMode::Require => Some(MakeRustlsConnect::new(tls_config()?)),
        SslMode::Prefer => Some(MakeRustlsConnect::new(unverified_tls_config()?)),
        _ => None,
    })
}

/// The TLS client settings: the platform's verifier and roots, the crypto provider the sender's
/// HTTPS client uses.
fn tls_config() -> Result<rustls::ClientConfig, SpoolError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(SpoolError::Tls)?
        .with_platform_verifier()
        .map_err(SpoolError::Tls)?
        .with_no_client_auth(),
    )
}

/// The TLS client settings of `sslmode=prefer`: any certificate is accepted (the handshake's
/// signatures are still checked), as libpq does in this mode.
fn unverified_tls_config() -> Result<rustls::ClientConfig, SpoolError> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(SpoolError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

/// Accepts the server's certificate whatever it is (`sslmode=prefer`), and checks that the
/// server holds its key.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
