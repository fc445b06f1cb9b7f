// Package memcachewire implements memcached's text protocol and its meta
// protocol (memcached's doc/protocol.txt) for both sides of a connection:
// requests as a server or proxy reads them from clients (ParseRequest) and
// responses as a client or proxy reads them from servers (ParseResponse),
// plus builders for both directions (AppendStorage, AppendRetrieval,
// AppendValue). It covers get/gets/gat/gats, set/add/replace/append/
// prepend/cas, delete, incr/decr, touch, the meta commands mg/ms/md/ma/mn/
// me, version, stats, verbosity, flush_all, quit and noreply. The binary
// protocol (deprecated upstream) is not implemented.
//
// # Why a package of its own
//
// It sits beside mysqlwire as a top-level package because it is the same
// kind of thing for another protocol: the codec that `scalestack memcache`
// (its proxy to memcached servers, and later its MySQL-table back end)
// needs, kept apart from any I/O so that it can be tested exhaustively and
// fuzzed on its own, and reused by any module that speaks memcached.
//
// # Rules
//
//   - It performs no I/O, starts no goroutines and imports only the
//     standard library. Decoders work on bytes the caller already holds and
//     report Incomplete instead of blocking: a command line or a data block
//     that arrives in pieces is parsed again, from its start, once more
//     bytes are there (the caller keeps unconsumed input, as conn does).
//   - The hot path allocates nothing: ParseRequest, ParseResponse, NextKey
//     and the Append* builders writing into a slice with spare capacity.
//     Keys, lines and data blocks are slices of the input, valid only while
//     the caller leaves that buffer alone. Tests assert this with
//     testing.AllocsPerRun.
//   - It never trusts a length read from the wire: every line is bounded
//     (Limits.MaxLine, Limits.MaxKeysLine) before its end is found, every
//     data block is checked against Limits.MaxValue before anything waits
//     for it, and keys against MaxKeyLen. Bad input yields the status whose
//     Reply is the line memcached 1.6 itself sends for it (ERROR,
//     CLIENT_ERROR ..., SERVER_ERROR object too large for cache), with the
//     number of bytes to skip, so a proxy answers exactly as the server
//     would; every decoder has a fuzz target.
//   - It keeps no mutable global state, takes no locks and uses no
//     reflection.
package memcachewire
