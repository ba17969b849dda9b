import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Whoami } from "../api/types";
import type { LiveHub } from "./live";

export interface Session {
  who: Whoami | null;
  setWho(who: Whoami | null): void;
  hub: LiveHub;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionContext");
  return session;
}
