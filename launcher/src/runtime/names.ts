// Container names: one path component under $ENROOT_DATA_PATH. enroot rejects only '/' and empty names;
// we also reject '.' and '..', which would name the data directory itself or its parent.
import { basename } from 'node:path'
import { invalidArgument } from '../util/errors.js'

export function validateName (name: string): string {
  if (name === '' || name.includes('/') || name === '.' || name === '..' || name.includes('\0')) throw invalidArgument(name)
  return name
}

/** `create`'s default: the image's basename without a trailing `.sqsh` (only that suffix, as enroot). */
export function defaultName (image: string): string {
  const base = basename(image)
  return base.endsWith('.sqsh') && base !== '.sqsh' ? base.slice(0, -'.sqsh'.length) : base
}
