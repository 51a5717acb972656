package trap

import "time"

// SetIMAPIdleNotify sets the IDLE keep-alive's interval until the
// returned func puts it back.
func SetIMAPIdleNotify(d time.Duration) func() {
	old := imapIdleNotify.Swap(int64(d))
	return func() { imapIdleNotify.Store(old) }
}

// SetIMAPLoginTimeout sets how long the IMAP face waits for a login
// until the returned func puts it back.
func SetIMAPLoginTimeout(d time.Duration) func() {
	old := imapLoginTimeout.Swap(int64(d))
	return func() { imapLoginTimeout.Store(old) }
}
