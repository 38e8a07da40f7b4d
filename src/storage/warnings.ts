/**
 * Something in the tree regprune did not fully understand. The item it is
 * about (and everything it might reference) is left in place.
 */
export type WarningCode =
  | 'bad-link' // link file not exactly `sha256:<64 hex>`
  | 'missing-link' // tag dir without current/link, revision dir without link
  | 'bad-name' // repository or tag name outside the grammar
  | 'symlink' // never followed, never deleted through
  | 'unreadable' // permission or I/O error
  | 'unexpected' // a file where a directory belongs, or the like
  | 'missing-blob' // a revision whose blob data is gone
  | 'bad-manifest' // manifest bytes not JSON or of an unknown media type
  | 'missing-tag'; // a tag named on the command line does not exist

export interface StorageWarning {
  readonly code: WarningCode;
  readonly path: string;
  readonly message: string;
}

export type WarningSink = (warning: StorageWarning) => void;
