package dispatch

import "errors"

var (
	// ErrOfferNotFound: no such offer, or not one made to the caller. The
	// two are deliberately indistinguishable.
	ErrOfferNotFound = errors.New("offer not found")
	// ErrOfferExpired: the offer's deadline has passed.
	ErrOfferExpired = errors.New("offer expired")
	// ErrOfferClosed: the offer was accepted, declined or withdrawn (the
	// request went to another driver, was cancelled, ...).
	ErrOfferClosed = errors.New("offer no longer open")
	// ErrDriverBusy: the driver is on another job.
	ErrDriverBusy = errors.New("driver is on another job")
	// ErrUnknownDriver: the id names no driver account.
	ErrUnknownDriver = errors.New("no such driver")

	// ErrStale is a store's answer to a Decision made on a snapshot that
	// changed before the decision could commit; the decision is made again.
	ErrStale = errors.New("dispatch snapshot changed")
	// ErrDriverTaken is a store's answer to an offer whose driver stopped
	// being free (another offer, a job, offline) after the snapshot.
	ErrDriverTaken = errors.New("driver no longer free")
)
