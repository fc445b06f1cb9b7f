package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Configuration files are TOML whose keys are the command's flag names
// (listen = "127.0.0.1:6033", backend-conns = 128, queue-timeout = "10s").
// A flag given on the command line overrides the file. Keeping one name per
// setting means --help documents the file too, and check-config can point
// at the exact line of a mistake.

// configError is a mistake in a configuration file, with its place.
type configError struct {
	file string
	line int
	msg  string
}

func (e *configError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.file, e.msg)
}

// configErrors lists every mistake found, not just the first.
type configErrors []error

func (es configErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// applyConfigFile sets every flag of fs named in the file at path that the
// command line did not set.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	cf, err := readConfigFile(path)
	if err != nil {
		return err
	}
	values := cf.values
	if t, ok := commandTables[fs.Name()]; ok && values[t] != nil {
		// The command reads that table itself (readTenants).
		values = make(map[string]any, len(cf.values))
		for k, v := range cf.values {
			if k != t {
				values[k] = v
			}
		}
	}
	return cf.apply(fs, nil, values, nil)
}

// commandTables names, by command, the one table of its configuration
// file that is not flags: mysqlproxy's [tenants.NAME] (see tenants.go).
var commandTables = map[string]string{"mysqlproxy": "tenants"}

// configFile is a decoded configuration file, kept with its text so that
// mistakes can be pointed at their line.
type configFile struct {
	path   string
	text   []byte
	values map[string]any
}

func readConfigFile(path string) (*configFile, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var values map[string]any
	if _, err := toml.Decode(string(text), &values); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, &configError{file: path, line: perr.Position.Line, msg: perr.Message}
		}
		return nil, &configError{file: path, msg: err.Error()}
	}
	return &configFile{path: path, text: text, values: values}, nil
}

// errAt is a configError at the line that sets key in table.
func (cf *configFile) errAt(table []string, key, msg string) error {
	return &configError{file: cf.path, line: keyLine(cf.text, table, key), msg: msg}
}

// apply sets every flag of fs named in values, the keys of table (nil: the
// top level), that the command line did not set. refuse, when set, names
// the keys a table may not hold and says why.
func (cf *configFile) apply(fs *flag.FlagSet, table []string, values map[string]any, refuse func(key string) string) error {
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLine(cf.text, table, keys[i]) < keyLine(cf.text, table, keys[j]) })
	var errs configErrors
	for _, key := range keys {
		if _, isTable := values[key].(map[string]any); isTable {
			errs = append(errs, cf.errAt(table, key, fmt.Sprintf("[%s]: tables are not settings; write the keys at the top level", strings.Join(append(append([]string(nil), table...), key), "."))))
			continue
		}
		if refuse != nil {
			if why := refuse(key); why != "" {
				errs = append(errs, cf.errAt(table, key, fmt.Sprintf("%q: %s", key, why)))
				continue
			}
		}
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			errs = append(errs, cf.errAt(table, key, fmt.Sprintf("unknown setting %q%s", key, suggest(fs, key))))
			continue
		}
		val, err := configValue(values[key])
		if err != nil {
			errs = append(errs, cf.errAt(table, key, fmt.Sprintf("%s: %v", key, err)))
			continue
		}
		if onCommandLine[key] {
			continue
		}
		if err := fs.Set(key, val); err != nil {
			errs = append(errs, cf.errAt(table, key, fmt.Sprintf("%s = %q: %v", key, val, err)))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// configValue renders a TOML value the way the flag would be written.
func configValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := configValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("tables are not settings; write the keys at the top level")
	}
	return "", fmt.Errorf("unsupported value type %T", v)
}

// tableHeader matches a table header line, [name] or [a.b], and captures
// the name.
var tableHeader = regexp.MustCompile(`^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$`)

// keyLine finds the line that sets key directly in table (nil: the top
// level, before any header), or the header of the table key itself; 0 if
// not found.
func keyLine(text []byte, table []string, key string) int {
	set := regexp.MustCompile(`^\s*("?` + regexp.QuoteMeta(key) + `"?\s*=)`)
	want := strings.Join(table, ".")
	sub := strings.Join(append(append([]string(nil), table...), key), ".")
	current := ""
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := tableHeader.FindStringSubmatch(line); m != nil {
			current = normalizeTableName(m[1])
			if current == sub || strings.HasPrefix(current, sub+".") {
				return n
			}
			continue
		}
		if current == want && set.MatchString(line) {
			return n
		}
	}
	return 0
}

// normalizeTableName turns a header's name (`a . "b"`) into its dotted form.
func normalizeTableName(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// suggest proposes the flag name closest to a misspelt key.
func suggest(fs *flag.FlagSet, key string) string {
	best, bestDist := "", 4
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(key, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
