//! One integration-test binary: rate limits and the response cache against real Redis.

mod cache;
mod limits;
