//! RESP2 wire protocol codec (requests and replies).
