package store

import (
	"context"
	"database/sql"
	"strings"
)

// rowWriter writes rows through a statement that takes many at once: a
// statement per row costs database/sql and the driver a dozen allocations
// and half a kilobyte a row (BenchmarkAddHourly), which a flood's
// decisions and hourly aggregates pay by the hundred thousand. Rows are
// gathered chunk at a time; full chunks share one prepared statement, the
// last, shorter one gets its own. The caller calls flush once the rows
// are added, and close when done.
type rowWriter struct {
	ctx   context.Context
	tx    *sql.Tx
	sql   func(n int) string // the statement for n rows
	chunk int                // rows a statement takes at most
	width int                // values a row takes
	args  []any
	full  *sql.Stmt // prepared for chunk rows, once a chunk is full
}

func newRowWriter(ctx context.Context, tx *sql.Tx, chunk, width int, sql func(n int) string) *rowWriter {
	return &rowWriter{ctx: ctx, tx: tx, sql: sql, chunk: chunk, width: width, args: make([]any, 0, chunk*width)}
}

// add adds one row of w.width values, writing the chunk it fills.
func (w *rowWriter) add(values ...any) error {
	w.args = append(w.args, values...)
	if len(w.args) < w.chunk*w.width {
		return nil
	}
	return w.flush()
}

// flush writes the rows added since the last write.
func (w *rowWriter) flush() error {
	n := len(w.args) / w.width
	var err error
	switch {
	case n == 0:
		return nil
	case n < w.chunk:
		_, err = w.tx.ExecContext(w.ctx, w.sql(n), w.args...)
	default:
		if w.full == nil {
			if w.full, err = w.tx.PrepareContext(w.ctx, w.sql(w.chunk)); err != nil {
				return err
			}
		}
		_, err = w.full.ExecContext(w.ctx, w.args...)
	}
	w.args = w.args[:0]
	return err
}

func (w *rowWriter) close() {
	if w.full != nil {
		w.full.Close()
	}
}

// valuesSQL returns head, n copies of row separated by commas, then tail:
// a statement of n rows.
func valuesSQL(head, row string, n int, tail string) string {
	var b strings.Builder
	b.Grow(len(head) + n*(len(row)+1) + len(tail))
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	return b.String()
}
