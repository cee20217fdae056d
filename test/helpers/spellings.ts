/**
 * Ways of writing `/api/chat` (extra slashes, dot segments, escapes, absolute form) that the
 * gateway must measure, limit and forward as `/api/chat`; the tests and the soak each add a few.
 */
export const CHAT_SPELLINGS: readonly string[] = [
  '//api/chat',
  '/api//chat',
  '///api/chat',
  '/api/./chat',
  '/x/../api/chat',
  '/../api/chat',
  '/api/%63hat',
  '/api/%63%68at',
  '/api%2Fchat',
  '/api%2fchat',
  'http://evil.example/api/chat',
];
