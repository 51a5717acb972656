package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/source"
)

// sourcePlan is one source to run and the jails that read it.
type sourcePlan struct {
	key   string // "file:/var/log/auth.log", "journal:sshd", "syslog"; also the store's position key
	jails []string
	file  string
	jrnl  *config.Journal
}

// journaldRunning reports whether journald is there to be read.
func journaldRunning() bool {
	if _, err := exec.LookPath("journalctl"); err != nil {
		return false
	}
	_, err := os.Stat("/run/systemd/journal/socket")
	return err == nil
}

// planSources groups the enabled jails by the sources they read. A jail
// naming both journal and files reads the journal when journald runs and
// the files otherwise, so one configuration serves both kinds of host.
func planSources(cfg *config.Config, jails []string, haveJournal bool) []*sourcePlan {
	byKey := map[string]*sourcePlan{}
	var order []string
	add := func(key string, p sourcePlan, jail string) {
		sp, ok := byKey[key]
		if !ok {
			sp = &p
			sp.key = key
			byKey[key] = sp
			order = append(order, key)
		}
		if !slices.Contains(sp.jails, jail) {
			sp.jails = append(sp.jails, jail)
		}
	}
	for _, name := range jails {
		j := cfg.Jails[name]
		useJournal := j.Journal != nil && (haveJournal || len(j.Files) == 0)
		if useJournal {
			add("journal:"+name, sourcePlan{jrnl: j.Journal}, name)
		} else {
			for _, f := range j.Files {
				add("file:"+f, sourcePlan{file: f}, name)
			}
		}
		if j.Syslog {
			add("syslog", sourcePlan{}, name)
		}
	}
	out := make([]*sourcePlan, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out
}

// describe says where a plan reads, for logs and status.
func (sp *sourcePlan) describe() string {
	switch {
	case sp.file != "":
		return sp.file
	case sp.jrnl != nil:
		var parts []string
		for _, u := range sp.jrnl.Units {
			parts = append(parts, "-u "+u)
		}
		for _, t := range sp.jrnl.Identifiers {
			parts = append(parts, "-t "+t)
		}
		return "journald " + strings.Join(parts, " ")
	default:
		return "syslog listener"
	}
}

// positioned is a running source whose position can be saved.
type positioned interface {
	position() string
}

type fileSource struct{ *source.File }

func (f fileSource) position() string { return f.Position().String() }

type journalSource struct{ *source.Journal }

func (j journalSource) position() string { return j.Cursor() }

// ParsePosition reads back a source.Position written by its String method.
func ParsePosition(s string) (source.Position, error) {
	var p source.Position
	_, err := fmt.Sscanf(s, "dev=%d inode=%d offset=%d head=%d:%x", &p.Dev, &p.Inode, &p.Offset, &p.HeadLen, &p.HeadHash)
	if err != nil {
		return p, fmt.Errorf("bad file position %q: %w", s, err)
	}
	return p, nil
}

// newParser returns the envelope parser live sources use.
func newParser() *logline.Parser { return &logline.Parser{} }
