package fail2ban

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rampart-dev/rampart/internal/filter"
)

// DefaultOwnDir is where a server's own filters live.
const DefaultOwnDir = "/etc/rampart/filters.d"

// Extend adds a server's own filters to reg and makes fail2ban's filters
// reachable by name:
//   - ownDir/*.toml in Rampart's pattern language and ownDir/*.conf in
//     fail2ban's format (a missing directory is no error); an own filter
//     replaces a built-in one of the same name;
//   - a name nothing else answers is looked up in f2bDir/filter.d ("" or
//     a missing directory: none).
func Extend(reg *filter.Registry, ownDir, f2bDir string) error {
	if ownDir != "" {
		entries, err := os.ReadDir(ownDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("filters directory: %w", err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			path := filepath.Join(ownDir, n)
			switch filepath.Ext(n) {
			case ".toml":
				if err := AddFile(reg, path); err != nil {
					return err
				}
			case ".conf":
				f, err := LoadFile(path)
				if err != nil {
					return err
				}
				reg.AddFilter(f)
			}
		}
	}
	if f2bDir != "" {
		reg.SetFallback(func(name string) (*filter.Filter, error) {
			base, _, _ := strings.Cut(name, "[")
			if _, err := os.Stat(filepath.Join(f2bDir, "filter.d", base+".conf")); err != nil {
				return nil, fmt.Errorf("unknown filter %q (no built-in filter, and no %s)", name, filepath.Join(f2bDir, "filter.d", base+".conf"))
			}
			return Load(f2bDir, name)
		})
	}
	return nil
}

// AddFile adds one filter file to reg: .toml in Rampart's pattern
// language, .conf in fail2ban's format.
func AddFile(reg *filter.Registry, path string) error {
	switch filepath.Ext(path) {
	case ".toml":
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(data) > maxConfigSize {
			return fmt.Errorf("%s: larger than %d bytes", path, maxConfigSize)
		}
		return reg.AddOwn(path, data)
	case ".conf", ".local":
		f, err := LoadFile(path)
		if err != nil {
			return err
		}
		reg.AddFilter(f)
		return nil
	}
	return fmt.Errorf("%s: a filter file is .toml (Rampart's patterns) or .conf (fail2ban's format)", path)
}
