package testutil

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// OwnTCPLocalPorts returns the local ports of the TCP sockets this process holds open. A test that
// counts connections on a shared server (MariaDB's processlist, whose HOST column ends in the
// client's port) uses it to tell its own connections from those of test packages running beside it.
func OwnTCPLocalPorts() (map[int]bool, error) {
	inodes := map[string]bool{}
	for _, target := range openFDs() {
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		if err := tcpTablePorts(table, inodes, ports); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

// tcpTablePorts adds to ports the local port of every row of a /proc/net/tcp-style table whose
// socket inode is in inodes.
func tcpTablePorts(path string, inodes map[string]bool, ports map[int]bool) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil // no IPv6 in this kernel
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !inodes[fields[9]] {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			return fmt.Errorf("%s: local address %q has no port", path, fields[1])
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return fmt.Errorf("%s: local port %q: %w", path, hexPort, err)
		}
		ports[int(port)] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
