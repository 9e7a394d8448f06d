//! ZDS: the node agent <-> ztunnel protocol (pods and their network namespaces), both ends.
