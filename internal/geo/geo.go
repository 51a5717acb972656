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
		var r countryRecord
		if db.country.Lookup(a).Decode(&r) == nil {
			info.Country = r.Country.ISOCode
			if info.Country == "" {
				info.Country = r.RegisteredCountry.ISOCode
			}
		}
	}
	if db.asn != nil {
		var r asnRecord
		if db.asn.Lookup(a).Decode(&r) == nil {
			info.ASN, info.Org = r.Number, r.Org
		}
	}
	return info
}

// ASN returns a's autonomous system; ok is false when unknown. It makes DB
// an engine.ASNLookup.
func (db *DB) ASN(a netip.Addr) (uint32, string, bool) {
	if db == nil || db.asn == nil {
		return 0, "", false
	}
	i := db.Lookup(a)
	return i.ASN, i.Org, i.ASN != 0
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
