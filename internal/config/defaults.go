package config

import (
	_ "embed"
	"slices"
)

// default.toml is the one place defaults live: every configuration is
// read over it (Parse), `rampart check-config --print-defaults` prints it,
// and with no configuration file it is the configuration (Default), its
// jails included. Tests check that it sets every key of the schema and
// that the engine's own fallbacks agree with it.
//
//go:embed default.toml
var defaultTOML []byte

// base returns the embedded defaults, decoded afresh (a Config shares
// nothing with another).
func base() *Config {
	c := &Config{}
	if err := c.decode(defaultFile, defaultTOML); err != nil {
		panic("embedded default config: " + err.Error())
	}
	c.lines = keyLines(defaultTOML)
	return c
}

// defaultFile names the embedded defaults in errors.
const defaultFile = "(embedded defaults)"

// Default returns the embedded default configuration.
func Default() *Config {
	c := base()
	if err := c.validate(); err != nil {
		panic("embedded default config: " + err.Error())
	}
	return c
}

// DefaultTOML returns the text of the embedded defaults, for
// `rampart check-config --print-defaults`.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }
