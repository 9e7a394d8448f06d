//! HBONE: HTTP/2 CONNECT tunnels over mutual TLS, client pool and server.
