// Package config reads Rampart's configuration file (TOML), fills in
// defaults and validates it strictly: unknown keys, bad values and missing
// files are errors that name the file, the line and the key.
//
// The package's files, by concern: schema.go (the keys and their allowed
// ranges), defaults.go and default.toml (the one place defaults live),
// durations.go (the duration syntax), validate.go (checks after decoding),
// errors.go (file:line:key errors and "did you mean" hints) and lines.go
// (where each key is written).
package config

import (
	"bytes"
	"fmt"
	"os"

	"github.com/pelletier/go-toml/v2"
)

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a configuration from data over the embedded defaults (their
// jails excepted: a file lists all of its own); file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := base()
	c.Jails = nil
	c.File = file
	if err := c.decode(file, data); err != nil {
		return nil, err
	}
	c.lines = keyLines(data)
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode reads one document over c: the keys it sets replace c's, those it
// leaves out stay. Jails take what they leave out from [defaults]: the jail
// tables are read a second time onto jails made by newJail, so that a key
// a jail sets (even to 0) is kept as written and validated, and one it
// leaves out is the [defaults] value, whatever the order of the tables.
func (c *Config) decode(file string, data []byte) error {
	if err := newDecoder(data).DisallowUnknownFields().Decode(c); err != nil {
		return decodeError(file, err)
	}
	if len(c.Jails) == 0 {
		return nil
	}
	doc := struct {
		Jails map[string]*Jail `toml:"jail"`
	}{Jails: map[string]*Jail{}}
	for name := range c.Jails {
		doc.Jails[name] = c.newJail(name)
	}
	if err := newDecoder(data).Decode(&doc); err != nil {
		return decodeError(file, err)
	}
	c.Jails = doc.Jails
	return nil
}

func newDecoder(data []byte) *toml.Decoder {
	return toml.NewDecoder(bytes.NewReader(data)).EnableUnmarshalerInterface()
}
