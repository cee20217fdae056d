/** Byte helpers shared by the parsers and the body reader. */

/** The pieces as one buffer: the piece itself when there is one (no copy), else one copy of all. */
export function joinPieces(pieces: readonly Buffer[], size?: number): Buffer {
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, size);
}
