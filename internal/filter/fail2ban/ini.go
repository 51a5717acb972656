package fail2ban

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// iniFile is one configuration file as Python's configparser reads it
// (fail2ban's dialect): "[section]" headers, "key = value" or "key: value"
// options with lower-cased keys, values continued on more-indented lines
// (joined with "\n"), whole-line comments starting with '#' or ';' and
// inline comments starting with ';' after white space. [DEFAULT] is kept
// apart: its options are visible from every section.
type iniFile struct {
	path     string
	defaults *section
	sections map[string]*section
	order    []string // section names in file order
}

// section is the options of one section; values are raw (not interpolated).
type section struct {
	name string
	vals map[string]string
	line map[string]int // option → line in its file, for errors
	file string
}

func newSection(name, file string) *section {
	return &section{name: name, vals: map[string]string{}, line: map[string]int{}, file: file}
}

// ParseError is a malformed configuration file.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// maxConfigSize bounds a configuration file read into memory.
const maxConfigSize = 4 << 20

func readINI(path string) (*iniFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseINI(path, data)
}

func parseINI(path string, data []byte) (*iniFile, error) {
	f := &iniFile{path: path, defaults: newSection("DEFAULT", path), sections: map[string]*section{}}
	var cur *section
	var opt string                             // the option being read ("" after a header)
	indent := 1 << 30                          // indent of the last option or header line
	vals := map[*section]map[string][]string{} // value lines, joined at the end
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxConfigSize)
	n := 0
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		commentAt := -1
		// Inline comments: ';' at the start or after white space.
		for i := 0; i < len(raw); i++ {
			if raw[i] == ';' && (i == 0 || raw[i-1] == ' ' || raw[i-1] == '\t') {
				commentAt = i
				break
			}
		}
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
			commentAt = 0
		}
		value := raw
		if commentAt >= 0 {
			value = raw[:commentAt]
		}
		value = strings.TrimSpace(value)
		if value == "" {
			// An empty line inside a value is kept (configparser's
			// empty_lines_in_values), unless the line held a comment.
			if commentAt < 0 && cur != nil && opt != "" && vals[cur][opt] != nil {
				vals[cur][opt] = append(vals[cur][opt], "")
			}
			continue
		}
		level := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if cur != nil && opt != "" && level > indent {
			vals[cur][opt] = append(vals[cur][opt], value)
			continue
		}
		indent = level
		if value[0] == '[' && strings.HasSuffix(value, "]") && len(value) > 2 {
			name := value[1 : len(value)-1]
			switch {
			case name == "DEFAULT":
				cur = f.defaults
			case f.sections[name] != nil:
				cur = f.sections[name]
			default:
				cur = newSection(name, path)
				f.sections[name] = cur
				f.order = append(f.order, name)
			}
			if vals[cur] == nil {
				vals[cur] = map[string][]string{}
			}
			opt = ""
			continue
		}
		if cur == nil {
			return nil, &ParseError{path, n, "option outside any [section]"}
		}
		i := strings.IndexAny(value, "=:")
		if i < 0 {
			return nil, &ParseError{path, n, fmt.Sprintf("not a section header or an option: %q", value)}
		}
		key := strings.ToLower(strings.TrimSpace(value[:i]))
		if key == "" {
			return nil, &ParseError{path, n, "option without a name"}
		}
		opt = key
		vals[cur][key] = []string{strings.TrimSpace(value[i+1:])}
		cur.line[key] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for s, opts := range vals {
		for k, ls := range opts {
			s.vals[k] = strings.TrimRight(strings.Join(ls, "\n"), " \t\n")
		}
	}
	return f, nil
}
