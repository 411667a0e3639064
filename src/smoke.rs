//! `hx-gateway smoke`: post-deploy validation of a running gateway.
