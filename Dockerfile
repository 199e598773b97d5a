# One image for every platform process: api, relay and the consumer groups differ only by command.
FROM oven/bun:1.4.5-slim AS base
WORKDIR /app
# HOST: servers bind every address, so the container's published ports reach them.
ENV NODE_ENV=production NODE_NO_WARNINGS=1 HOST=0.0.0.0

FROM base AS deps
COPY package.json package-lock.json bunfig.toml ./
RUN bun install --production --ignore-scripts

FROM base
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bunfig.toml tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
COPY connectors ./connectors
USER bun
EXPOSE 5000 9101
CMD ["bun", "src/bin/services.ts"]
