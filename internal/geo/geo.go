// Package geo enriches addresses from MaxMind-format databases (GeoLite2,
// DB-IP lite): country from a Country or City database, autonomous system
// number and organisation from an ASN database. Either database may be
// absent; lookups then report nothing.
package geo

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Info is what the databases say about an address.
type Info struct {
	Country string // ISO 3166-1 alpha-2, "" when unknown
	ASN     uint32 // 0 when unknown
	Org     string // the AS organisation
}

// DB answers lookups from the databases it was opened with. It is safe for
// concurrent use.
type DB struct {
	country *maxminddb.Reader
	asn     *maxminddb.Reader

	countries records[string] // ISO codes by record
	ases      records[asnRecord]
}

// records caches the records decoded from one database, by their offset
// in it: many networks share a record (a country's, an AS's), and decoding
// one is most of what a lookup costs. A DB is one version of its files, so
// an entry never goes stale; a full cache is emptied.
type records[T any] struct {
	mu sync.Mutex
	m  map[uintptr]T
}

// maxRecords bounds a cache: attacks come from a few thousand ASes at a
// time, and the countries are 250.
const maxRecords = 1 << 14

// get returns the record of r, a lookup that found one, decoding it with
// decode the first time. A record decode cannot read is the zero value,
// and is not kept.
func (c *records[T]) get(r maxminddb.Result, decode func(maxminddb.Result) (T, bool)) T {
	off := r.Offset()
	c.mu.Lock()
	v, ok := c.m[off]
	c.mu.Unlock()
	if ok {
		return v
	}
	if v, ok = decode(r); !ok {
		return v
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxRecords {
		c.m = make(map[uintptr]T)
	}
	c.m[off] = v
	c.mu.Unlock()
	return v
}

// MaxSize is the largest database file Open reads (GeoLite2-City is about
// 60 MiB, Country and ASN under 10 MiB).
const MaxSize = 512 << 20

// Open opens the databases at the given paths; an empty path skips that
// database. A file that is not a MaxMind-format database is an error.
//
// A database is read into memory rather than mapped: a file rewritten or
// truncated in place while mapped would change under the lookups, or kill
// the process with SIGBUS, and updates do happen in place (a cp over the
// old file). It costs the file's size in memory.
func Open(countryPath, asnPath string) (*DB, error) {
	db := &DB{}
	var err error
	if countryPath != "" {
		if db.country, err = openFile(countryPath); err != nil {
			return nil, fmt.Errorf("geo: country database %s: %w", countryPath, err)
		}
	}
	if asnPath != "" {
		if db.asn, err = openFile(asnPath); err != nil {
			db.Close()
			return nil, fmt.Errorf("geo: ASN database %s: %w", asnPath, err)
		}
	}
	return db, nil
}

func openFile(path string) (*maxminddb.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("larger than %d MiB: not a database this tool reads", MaxSize>>20)
	}
	return maxminddb.OpenBytes(data)
}

type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	// DB-IP and GeoLite2 City carry the same country field; some country
	// databases only have the registered country.
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// Lookup returns what the databases know of a. Lookup errors (a corrupt
// record) leave the affected fields empty.
func (db *DB) Lookup(a netip.Addr) Info {
	var info Info
	if db == nil {
		return info
	}
	a = a.Unmap()
	if db.country != nil {
		if r := db.country.Lookup(a); r.Found() {
			info.Country = db.countries.get(r, decodeCountry)
		}
	}
	rec := db.asnOf(a)
	info.ASN, info.Org = rec.Number, rec.Org
	return info
}

// asnOf returns the AS record of a (unmapped), zero when unknown.
func (db *DB) asnOf(a netip.Addr) asnRecord {
	if db.asn == nil {
		return asnRecord{}
	}
	r := db.asn.Lookup(a)
	if !r.Found() {
		return asnRecord{}
	}
	return db.ases.get(r, decodeAS)
}

func decodeCountry(r maxminddb.Result) (string, bool) {
	var rec countryRecord
	if r.Decode(&rec) != nil {
		return "", false
	}
	if rec.Country.ISOCode != "" {
		return rec.Country.ISOCode, true
	}
	return rec.RegisteredCountry.ISOCode, true
}

func decodeAS(r maxminddb.Result) (asnRecord, bool) {
	var rec asnRecord
	if r.Decode(&rec) != nil {
		return asnRecord{}, false
	}
	return rec, true
}

// ASN returns a's autonomous system; ok is false when unknown. It makes DB
// an engine.ASNLookup.
func (db *DB) ASN(a netip.Addr) (uint32, string, bool) {
	if db == nil {
		return 0, "", false
	}
	rec := db.asnOf(a.Unmap())
	return rec.Number, rec.Org, rec.Number != 0
}

// HasASN reports whether an ASN database is open.
func (db *DB) HasASN() bool { return db != nil && db.asn != nil }

// Close closes the databases.
func (db *DB) Close() error {
	var err error
	for _, r := range []*maxminddb.Reader{db.country, db.asn} {
		if r != nil {
			if e := r.Close(); e != nil && err == nil {
				err = e
			}
		}
	}
	return err
}
