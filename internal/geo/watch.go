package geo

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// Watched is a DB that follows its files: Check reopens a database whose
// file was replaced or rewritten (geoipupdate renames a new file over the
// old one; a copy rewrites it in place), so a long-running daemon picks up
// each update without a restart or a reload. Lookups go on against the
// databases in force while a new one is opened, and a new file that is
// not a database leaves the old one in force. It is safe for concurrent
// use.
type Watched struct {
	paths [2]string // country, ASN; "" when not configured

	mu  sync.RWMutex // Lookup holds it for reading: Close unmaps the file
	cur [2]*DB       // one DB per path, so each reopens alone
	ids [2]fileID    // the files cur was opened from
	err [2]error     // why a file is not in force; nil when it is
}

// fileID tells whether a file changed: a rename brings a new inode, a
// rewrite a new size or modification time.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id, nil
}

// OpenWatched opens the databases at the given paths (either may be "").
// A database that cannot be opened is not an error here: its lookups
// report nothing until Check finds a good file, and Errors says why. Use
// Open where a bad path must stop the caller.
func OpenWatched(countryPath, asnPath string) *Watched {
	w := &Watched{paths: [2]string{countryPath, asnPath}}
	w.Check()
	return w
}

// Check reopens each database whose file changed since it was opened (or
// that could not be opened before). It reports which paths it reopened and
// the errors of those it could not; the databases in force stay in force
// on error.
func (w *Watched) Check() (reloaded []string, errs []error) {
	for i, path := range w.paths {
		if path == "" {
			continue
		}
		id, err := statID(path)
		w.mu.RLock()
		same := err == nil && w.cur[i] != nil && id == w.ids[i]
		prevErr := w.err[i]
		w.mu.RUnlock()
		if same {
			continue
		}
		var db *DB
		if err == nil {
			if i == 0 {
				db, err = Open(path, "")
			} else {
				db, err = Open("", path)
			}
		} else {
			err = fmt.Errorf("geo: %s: %w", path, err)
		}
		if err != nil {
			w.mu.Lock()
			w.err[i] = err
			w.mu.Unlock()
			// Report a failure once, not at every check.
			if prevErr == nil || prevErr.Error() != err.Error() {
				errs = append(errs, err)
			}
			continue
		}
		w.mu.Lock()
		old := w.cur[i]
		w.cur[i], w.ids[i], w.err[i] = db, id, nil
		w.mu.Unlock()
		if old != nil {
			old.Close() // no lookup holds it: Lookup holds mu
		}
		reloaded = append(reloaded, path)
	}
	return reloaded, errs
}

// Errors returns why configured databases are not in force, if any.
func (w *Watched) Errors() []error {
	if w == nil {
		return nil
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	var out []error
	for _, e := range w.err {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// Lookup returns what the databases in force know of a.
func (w *Watched) Lookup(a netip.Addr) Info {
	if w == nil {
		return Info{}
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	c := w.cur[0].Lookup(a)
	n := w.cur[1].Lookup(a)
	return Info{Country: c.Country, ASN: n.ASN, Org: n.Org}
}

// ASN returns a's autonomous system; ok is false when unknown. It makes
// Watched an engine.ASNLookup.
func (w *Watched) ASN(a netip.Addr) (uint32, string, bool) {
	if w == nil {
		return 0, "", false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.cur[1].ASN(a) // the country database is not read
}

// Paths returns the configured paths: country, ASN.
func (w *Watched) Paths() (country, asn string) { return w.paths[0], w.paths[1] }

// Close closes the databases in force.
func (w *Watched) Close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i, db := range w.cur {
		if db != nil {
			errs = append(errs, db.Close())
			w.cur[i] = nil
		}
	}
	return errors.Join(errs...)
}
