//! Linux-specific code: network namespaces, socket options and unix-socket descriptor passing.
//! Every `unsafe` block of the crate lives here, kept small and commented.
