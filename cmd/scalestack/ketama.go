package main

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Key distribution compatible with twemproxy (Debian's nutcracker):
// replacing a nutcracker in place with the same server list and hash must
// put every key on the same memcached server, or the cache empties. What
// follows reproduces twemproxy 0.5's nc_ketama.c, nc_fnv.c and nc_md5.c
// behaviour (read there, written here):
//
//   - A server's ketama name is the name given after its address in the
//     server list, else "host:port" as written, else just "host" when the
//     port is 11211 (libmemcached's convention, kept by twemproxy).
//   - Each server gets floor(weight/total * 160/4 * nservers) * 4 points,
//     computed in float32 as twemproxy does: for name-0, name-1, ... the MD5
//     of "name-i" yields four little-endian 32-bit points.
//   - A key's hash picks the first point at or above it (wrapping to the
//     first point); a single-server pool and an empty key always go to
//     server 0.
//   - fnv1a_64 (twemproxy's default) is twemproxy's variant: the 64-bit
//     offset basis and prime truncated to 32 bits, arithmetic in 32 bits,
//     and each byte sign-extended first (C's char is signed on x86), which
//     matters for keys with bytes of 0x80 and above.

const ketamaPointsPerServer = 160

type keyHash func(key []byte) uint32

// keyHashes are the key hashes --hash accepts, named as in nutcracker.yml.
var keyHashes = map[string]keyHash{
	"fnv1a_64": hashFNV1a64,
	"fnv1_64":  hashFNV164,
	"fnv1a_32": hashFNV1a32,
	"fnv1_32":  hashFNV132,
	"md5":      hashMD5,
}

func signExtend(b byte) uint32 { return uint32(int32(int8(b))) }

func hashFNV1a64(key []byte) uint32 {
	h := uint32(0xcbf29ce484222325 & 0xffffffff)
	for _, b := range key {
		h ^= signExtend(b)
		h *= uint32(0x100000001b3 & 0xffffffff)
	}
	return h
}

func hashFNV164(key []byte) uint32 {
	h := uint64(0xcbf29ce484222325)
	for _, b := range key {
		h *= 0x100000001b3
		h ^= uint64(int64(int8(b)))
	}
	return uint32(h)
}

func hashFNV1a32(key []byte) uint32 {
	h := uint32(2166136261)
	for _, b := range key {
		h ^= signExtend(b)
		h *= 16777619
	}
	return h
}

func hashFNV132(key []byte) uint32 {
	h := uint32(2166136261)
	for _, b := range key {
		h *= 16777619
		h ^= signExtend(b)
	}
	return h
}

func hashMD5(key []byte) uint32 {
	sum := md5.Sum(key)
	return binary.LittleEndian.Uint32(sum[:4])
}

// mcServerConf is one entry of --servers.
type mcServerConf struct {
	addr   string // host:port as written
	host   string
	port   int
	weight int
	name   string // ketama name
}

// parseMemcacheServers parses "HOST:PORT[:WEIGHT][ NAME],...".
func parseMemcacheServers(s string) ([]mcServerConf, error) {
	var out []mcServerConf
	seen := map[string]bool{}
	for _, item := range splitList(s) {
		spec, name, _ := strings.Cut(item, " ")
		name = strings.TrimSpace(name)
		parts := strings.Split(spec, ":")
		if len(parts) != 2 && len(parts) != 3 {
			return nil, fmt.Errorf("server %q: want HOST:PORT[:WEIGHT][ NAME]", item)
		}
		port, err := strconv.Atoi(parts[1])
		if err != nil || port <= 0 || port > 65535 || parts[0] == "" {
			return nil, fmt.Errorf("server %q: bad host or port", item)
		}
		weight := 1
		if len(parts) == 3 {
			weight, err = strconv.Atoi(parts[2])
			if err != nil || weight <= 0 || weight > 1<<20 {
				return nil, fmt.Errorf("server %q: weight must be a positive integer", item)
			}
		}
		c := mcServerConf{addr: parts[0] + ":" + parts[1], host: parts[0], port: port, weight: weight, name: name}
		if c.name == "" {
			c.name = c.addr
			if port == 11211 {
				c.name = c.host
			}
		}
		if len(c.name)+12 > 86 {
			// twemproxy formats "name-i" into 86 bytes and would truncate.
			return nil, fmt.Errorf("server %q: ketama name longer than twemproxy allows", item)
		}
		if seen[c.name] {
			return nil, fmt.Errorf("server %q: ketama name %q given twice", item, c.name)
		}
		seen[c.name] = true
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no servers")
	}
	return out, nil
}

// ketamaPoint is one point of the continuum.
type ketamaPoint struct {
	value  uint32
	server int
}

// ketamaRing is an immutable continuum, shared read-only by every loop.
type ketamaRing struct {
	points  []ketamaPoint
	servers int
}

func newKetamaRing(servers []mcServerConf) *ketamaRing {
	total := 0
	for _, s := range servers {
		total += s.weight
	}
	n := len(servers)
	r := &ketamaRing{servers: n}
	for i, s := range servers {
		// float32 at every step, as in twemproxy's C.
		pct := float32(s.weight) / float32(total)
		x := float32(float32(float32(pct*float32(ketamaPointsPerServer))/4) * float32(n))
		y := float32(float64(x) + 0.0000000001)
		points := uint32(float32(math.Floor(float64(y)))) * 4
		for p := uint32(0); p < points/4; p++ {
			sum := md5.Sum([]byte(s.name + "-" + strconv.FormatUint(uint64(p), 10)))
			for a := 0; a < 4; a++ {
				r.points = append(r.points, ketamaPoint{value: binary.LittleEndian.Uint32(sum[a*4:]), server: i})
			}
		}
	}
	sort.SliceStable(r.points, func(a, b int) bool { return r.points[a].value < r.points[b].value })
	return r
}

// dispatch returns the server for a key hash.
func (r *ketamaRing) dispatch(h uint32) int {
	pts := r.points
	i := sort.Search(len(pts), func(i int) bool { return pts[i].value >= h })
	if i == len(pts) {
		i = 0
	}
	return pts[i].server
}

// hashTagged narrows key to the part inside the hash tag (twemproxy's
// hash_tag, e.g. "{}"), when the key has a non-empty one.
func hashTagged(key []byte, tag string) []byte {
	if len(tag) != 2 {
		return key
	}
	for i := 0; i < len(key); i++ {
		if key[i] == tag[0] {
			for j := i + 1; j < len(key); j++ {
				if key[j] == tag[1] {
					if j-i > 1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
