import type { ComponentChildren, JSX } from "preact";
import { isPlainClick, navigate } from "../lib/router";

type Props = { href: string; children: ComponentChildren } & Omit<JSX.HTMLAttributes<HTMLAnchorElement>, "href">;

/** A real link (open in a new tab works) that the router follows without a page load. */
export function Link({ href, children, ...rest }: Props) {
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (!isPlainClick(e)) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

export const appHref = (name: string) => `/apps/${encodeURIComponent(name)}`;
export const hostHref = (host: string) => `/hosts/${encodeURIComponent(host)}`;
export const actionHref = (id: string) => `/actions/${encodeURIComponent(id)}`;
