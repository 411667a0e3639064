//! The integration tests of HX Gateway, one binary with one module per area.

mod rag_store;
