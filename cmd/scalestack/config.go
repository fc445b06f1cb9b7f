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
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var values map[string]any
	if _, err := toml.Decode(string(text), &values); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return &configError{file: path, line: perr.Position.Line, msg: perr.Message}
		}
		return &configError{file: path, msg: err.Error()}
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLine(text, keys[i]) < keyLine(text, keys[j]) })
	var errs configErrors
	for _, key := range keys {
		line := keyLine(text, key)
		if _, isTable := values[key].(map[string]any); isTable {
			errs = append(errs, &configError{file: path, line: line, msg: fmt.Sprintf("[%s]: tables are not settings; write the keys at the top level", key)})
			continue
		}
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			errs = append(errs, &configError{file: path, line: line, msg: fmt.Sprintf("unknown setting %q%s", key, suggest(fs, key))})
			continue
		}
		val, err := configValue(values[key])
		if err != nil {
			errs = append(errs, &configError{file: path, line: line, msg: fmt.Sprintf("%s: %v", key, err)})
			continue
		}
		if onCommandLine[key] {
			continue
		}
		if err := fs.Set(key, val); err != nil {
			errs = append(errs, &configError{file: path, line: line, msg: fmt.Sprintf("%s = %q: %v", key, val, err)})
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

// keyLine finds the line that sets key at the top level (0 if not found).
func keyLine(text []byte, key string) int {
	re := regexp.MustCompile(`^\s*("?` + regexp.QuoteMeta(key) + `"?\s*=|\[\s*` + regexp.QuoteMeta(key) + `\s*\])`)
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for n := 1; sc.Scan(); n++ {
		if re.MatchString(sc.Text()) {
			return n
		}
	}
	return 0
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
